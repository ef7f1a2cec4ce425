"""`sollama bench`: measure latency and throughput under a controlled load, and store every request.

`run_bench(config)` does one run or a sweep: it checks the server and model, fixes the payloads, runs the warm-up
and measured phases on aiohttp (`bench_runner`), writes request rows to the history as it goes (batched
commits), and returns a `BenchResult`. Ctrl-C or a dead server end the run early: what was measured is kept and
the run is marked interrupted / failed. The caller decides the exit code from `BenchResult.status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_ops import __version__
from ollama_ops.bench_model import RequestRecord, RunMeta
from ollama_ops.core.bench_metrics import SLO, BenchSummary, MetricsAccumulator
from ollama_ops.core.prompts import BUILTIN_SETS, builtin_prompts, parse_prompt_file, plan_payloads
from ollama_ops.errors import UsageError
from ollama_ops.services.bench_runner import LoadSpec, Runner
from ollama_ops.services.bench_session import open_session, preflight, system_facts
from ollama_ops.services.bench_sweep import SweepResult, SweepStep, run_sweep  # noqa: F401 - SweepStep re-exported
from ollama_ops.services.bench_wire import WireClient

FLUSH_ROWS = 64
FLUSH_SECONDS = 0.05
PROGRESS_SECONDS = 0.25
# A median share of E2EL spent waiting for a runner slot worth telling the user about.
SLOT_WAIT_SHARE = 0.2
# Concurrency from which chunks clocked at read time (not by the kernel) carry a visible client backlog.
BACKLOG_CONCURRENCY = 8
CHUNKS_WARNING = ("the server sent no eval_count: output tokens were counted as text chunks, which may differ "
                  "from the model's tokens")


@dataclass
class BenchConfig:
    """Everything one `sollama bench` invocation asks for."""

    model: str
    base_url: str
    host: str = ""
    load: LoadSpec = field(default_factory=LoadSpec)
    api: str = "generate"
    prompts: str = "short"
    max_tokens: int | None = 64
    options: dict[str, Any] = field(default_factory=dict)
    slo: SLO = field(default_factory=SLO)
    timeout: float = 120.0
    connect_timeout: float = 3.0
    label: str | None = None
    sweep: bool = False
    sweep_max: int = 64  # highest concurrency (or rate multiple) a sweep tries
    store_path: str | Path | None = None


@dataclass
class Progress:
    """A snapshot for the live view."""

    phase: str  # "warmup" | "run"
    done: int
    failed: int
    total: int | None
    elapsed_s: float
    duration_s: float | None
    in_flight: int
    step: str = ""


@dataclass
class BenchSeries:
    """Samples of the measured phase for charts (successful requests; seconds): every request up to
    `bench_metrics.SERIES_POINTS`, beyond that an even thinning of them (every k-th request)."""

    send_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    e2el_s: list[float] = field(default_factory=list)


@dataclass
class BenchResult:
    """One bench run (for a sweep: its last step, with the sweep's steps and knee)."""

    run_id: int
    status: str  # "completed" | "interrupted" | "failed"
    model: str
    host: str
    api: str
    label: str | None
    ollama_version: str | None
    model_digest: str | None
    load: dict[str, Any]
    summary: BenchSummary
    warnings: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    arrival_clock: str = "kernel"  # how chunk arrivals were clocked: kernel | event loop | mixed (N% kernel)
    sweep: SweepResult | None = None
    database: str = ""
    series: BenchSeries = field(default_factory=BenchSeries, metadata={"json_skip": True})


class _Sink:
    """Takes finished requests: commits them to the store within FLUSH_SECONDS (sooner when FLUSH_ROWS pile
    up), feeds the summary, reports progress. A killed bench thus loses its in-flight requests and at most the
    last FLUSH_SECONDS of finished ones; batching keeps commits to a few dozen a second at any request rate."""

    def __init__(self, store: Any, run_id: int, acc: MetricsAccumulator, epoch0: float,
                 progress: Callable[[int, int], None] | None) -> None:
        self.store, self.run_id, self.acc, self.epoch0 = store, run_id, acc, epoch0
        self.progress = progress
        self.rows: list[RequestRecord] = []
        self.last_progress = time.perf_counter()
        self.done = self.failed = 0
        self.chunk_counted = False
        self.error: Exception | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, record: RequestRecord) -> None:
        if self.error is not None:
            raise self.error
        self.rows.append(record)
        if not record.warmup:
            self.acc.add(record, record.send_time - self.epoch0)
            self.done += 1
            self.failed += not record.ok
            if record.ok and record.output_tokens_source == "chunks":
                self.chunk_counted = True
        if len(self.rows) >= FLUSH_ROWS:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(FLUSH_SECONDS, self._timed_flush)
        if self.progress is not None:
            now = time.perf_counter()
            if now - self.last_progress >= PROGRESS_SECONDS:
                self.last_progress = now
                self.progress(self.done, self.failed)

    def _timed_flush(self) -> None:
        self._timer = None
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - raised at the next request (ends the run) or the final flush
            self.error = exc

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.rows:
            rows, self.rows = self.rows, []
            self.store.add_requests(self.run_id, rows)
        if self.error is not None:
            raise self.error


def load_prompts(spec: str) -> list[Any]:
    """A built-in set name or a prompts file (text lines or JSONL)."""
    if spec in BUILTIN_SETS:
        return builtin_prompts(spec)
    from ollama_ops.edges.textfile import read_text_file

    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(f"cannot read prompts file {path}: No such file or directory",
                         hint=f"or use a built-in set: {', '.join(BUILTIN_SETS)}")
    text = read_text_file(path, what="prompts file", error=UsageError)
    try:
        return parse_prompt_file(text, path.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def load_settings_dict(config: BenchConfig, spec: LoadSpec) -> dict[str, Any]:
    """The load settings stored with a run (what `report --compare` pairs runs by)."""
    return {"concurrency": None if spec.open_loop else spec.concurrency, "rate": spec.rate,
            "arrival": spec.arrival if spec.open_loop else None, "max_concurrency": spec.max_concurrency,
            "requests": spec.requests, "duration": spec.duration, "warmup": spec.warmup,
            "max_tokens": config.max_tokens, "prompts": config.prompts, "seed": spec.seed,
            "options": dict(config.options), "timeout": config.timeout}


def run_bench(config: BenchConfig, on_progress: Callable[[Progress], None] | None = None) -> BenchResult:
    """Run the bench (one run or a sweep) and return its result; never prints."""
    if config.api not in ("generate", "chat"):
        raise UsageError(f"--api must be generate or chat, got {config.api!r}")
    items = load_prompts(config.prompts)
    try:
        plan = plan_payloads(items, model=config.model, api=config.api, max_tokens=config.max_tokens,
                             options=config.options, seed=config.load.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return asyncio.run(_main(config, plan, on_progress))


async def _main(config: BenchConfig, plan: Any, on_progress: Callable[[Progress], None] | None) -> BenchResult:
    from ollama_ops.edges.store import Store

    system = system_facts()
    async with open_session(config) as session:
        facts = await preflight(session, config.model, config.base_url)
        wire = WireClient.for_url(config.base_url, config.timeout, config.connect_timeout)  # None on https
        try:
            with Store(config.store_path) as store:
                if not config.sweep:
                    return await _one_run(config, config.load, session, store, plan, facts, system, on_progress,
                                          wire=wire)

                async def step(spec: LoadSpec, sweep_id: str, i: int) -> BenchResult:
                    return await _one_run(config, spec, session, store, plan, facts, system, on_progress, sweep_id,
                                          i, wire=wire)

                return await run_sweep(config, step)
        finally:
            if wire is not None:
                wire.close()


async def _one_run(config: BenchConfig, spec: LoadSpec, session: Any, store: Any, plan: Any,
                   facts: dict[str, Any], system: dict[str, Any], on_progress: Callable[[Progress], None] | None,
                   sweep_id: str | None = None, step: int | None = None,
                   wire: WireClient | None = None) -> BenchResult:
    load = load_settings_dict(config, spec)
    meta = RunMeta(model=config.model, host=config.host, label=config.label, api=config.api,
                   ollama_version=facts.get("version"), model_digest=facts.get("digest"), load=load,
                   sollama_version=__version__, system=system, sweep_id=sweep_id, sweep_step=step)
    run_id = store.create_run(meta)
    acc = MetricsAccumulator(config.slo)
    path = "/api/chat" if config.api == "chat" else "/api/generate"
    runner: Runner | None = None
    phase = {"name": "warmup", "t0": time.perf_counter(), "total": spec.warmup}
    step_text = "" if step is None else (f"step {step + 1}: " + (f"rate {spec.rate:g}/s" if spec.open_loop
                                                                   else f"concurrency {spec.concurrency}"))

    def progress(done: int, failed: int) -> None:
        if on_progress is not None and runner is not None:
            on_progress(Progress(phase=str(phase["name"]), done=done, failed=failed,
                                 total=phase["total"], elapsed_s=time.perf_counter() - float(phase["t0"]),  # type: ignore[arg-type]
                                 duration_s=spec.duration if phase["name"] == "run" else None,
                                 in_flight=runner.in_flight, step=step_text))

    sink = _Sink(store, run_id, acc, 0.0, progress if on_progress else None)
    runner = Runner(session, path, plan, sink, wire)
    sink.epoch0 = runner.epoch0
    restore = _trap_sigint(runner)
    try:
        if spec.warmup:
            progress(0, 0)
            await runner.run_phase(0, spec, spec.warmup, None, warmup=True)
        phase.update(name="run", t0=time.perf_counter(), total=spec.requests if spec.duration is None else None)
        sink.done = sink.failed = 0
        reads0 = list(wire.reads) if wire is not None else [0, 0]
        progress(0, 0)
        await runner.run_phase(spec.warmup, spec, spec.requests if spec.duration is None else None,
                               spec.duration, warmup=False)
        progress(sink.done, sink.failed)
    except BaseException as exc:
        _abandon(store, sink, run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    finally:
        restore()
    sink.flush()
    summary = acc.summary(runner.wall_s)
    status = {"interrupted": "interrupted", "server unreachable": "failed"}.get(runner.stop_reason or "",
                                                                                "completed")
    warnings = [CHUNKS_WARNING] if sink.chunk_counted else []
    clock = arrival_clock(wire.reads[0] - reads0[0], wire.reads[1] - reads0[1]) if wire is not None else "event loop"
    if clock != "kernel" and runner.peak_in_flight >= BACKLOG_CONCURRENCY:
        warnings.append(f"chunk arrivals were clocked when the event loop read them ({clock}): with up to "
                        f"{runner.peak_in_flight} requests in flight, TTFT and ITL include the client's own backlog "
                        "(~1-2 ms at 32)")
    if summary.requests_ok == 0 and summary.requests_failed and status == "completed":
        warnings.append("every request failed: " + ", ".join(f"{k} ×{n}" for k, n in summary.errors.items()))
    wait = summary.breakdown.wait_share if summary.breakdown else 0.0
    if wait >= SLOT_WAIT_SHARE:
        warnings.append(f"requests spent {wait:.0%} of their time (median) waiting for a runner slot: the load exceeds "
                        "OLLAMA_NUM_PARALLEL; `sollama memory --parallel N` shows whether more slots fit")
    store.finish_run(run_id, status, dataclasses.asdict(summary) | {"arrival_clock": clock})
    send_s, ttft_s, e2el_s = acc.chart_series()
    series = BenchSeries(send_s=send_s, ttft_s=ttft_s, e2el_s=e2el_s)
    return BenchResult(run_id=run_id, status=status, model=config.model, host=config.host, api=config.api,
                       label=config.label, ollama_version=facts.get("version"), model_digest=facts.get("digest"),
                       load=load, summary=summary, warnings=warnings, stop_reason=runner.stop_reason,
                       arrival_clock=clock,
                       database=str(store.path), series=series)


def arrival_clock(kernel: int, read_time: int) -> str:
    """How a run's chunk arrivals were clocked, from its count of kernel-stamped and read-time-stamped reads."""
    if not read_time:
        return "kernel"
    if not kernel:
        return "event loop"
    return f"mixed ({kernel / (kernel + read_time):.0%} kernel)"


def _abandon(store: Any, sink: _Sink, run_id: int, status: str) -> None:
    """Keep what was measured and mark the run, on the way out of an unexpected error (best effort: the store
    itself may be what failed)."""
    with contextlib.suppress(Exception):
        sink.flush()
    with contextlib.suppress(Exception):
        store.finish_run(run_id, status, None)


def _trap_sigint(runner: Runner) -> Callable[[], None]:
    """Ctrl-C stops the run gracefully (a second one is an ordinary KeyboardInterrupt)."""
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        runner.stop("interrupted")
        loop.remove_signal_handler(signal.SIGINT)

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no signals here
        return lambda: None

    def restore() -> None:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (ValueError, RuntimeError):
            pass

    return restore


def build_config(settings: Any, *, model: str, concurrency: int | None = None, rate: float | None = None,
                 arrival: str = "poisson", max_concurrency: int | None = None, requests: int | None = None,
                 duration: str | None = None, warmup: int | None = None, seed: int | None = 0,
                 api: str | None = None, prompts: str | None = None, max_tokens: int | None = None,
                 options: list[str] | None = None, slo: str | None = None, timeout: float | None = None,
                 label: str | None = None, sweep: bool = False, sweep_max: int = 64) -> BenchConfig:
    """Flags over the `bench` config section → a validated BenchConfig (UsageError on contradictions)."""
    from ollama_ops.core.arrivals import ARRIVALS
    from ollama_ops.core.bench_metrics import parse_slo
    from ollama_ops.core.hosts import parse_host
    from ollama_ops.core.options import parse_options
    from ollama_ops.core.units import parse_duration

    b = settings.bench
    if rate is not None and concurrency is not None:
        raise UsageError("--rate (open loop) and --concurrency (closed loop) exclude each other",
                         hint="cap an open loop with --max-concurrency")
    if rate is not None and not rate > 0:
        raise UsageError(f"--rate must be positive, got {rate:g}")
    if arrival not in ARRIVALS:
        raise UsageError(f"--arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
    if duration is not None and requests is not None:
        raise UsageError("--requests and --duration exclude each other")
    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise UsageError(f"--duration {exc}") from None
        if not seconds > 0:
            raise UsageError("--duration must be positive")
    for flag, value in (("--concurrency", concurrency), ("--max-concurrency", max_concurrency),
                        ("--requests", requests), ("--max-tokens", max_tokens), ("--sweep-max", sweep_max)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if warmup is not None and warmup < 0:
        raise UsageError(f"--warmup must not be negative, got {warmup}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be positive, got {timeout:g}")
    try:
        objectives = parse_slo(slo)
    except ValueError as exc:
        raise UsageError(f"--slo: {exc}") from None
    spec = LoadSpec(concurrency=concurrency or b.concurrency, rate=rate, arrival=arrival,
                    max_concurrency=max_concurrency, requests=None if seconds else (requests or b.requests),
                    duration=seconds, warmup=b.warmup if warmup is None else warmup, seed=seed)
    address = parse_host(settings.server.host)
    return BenchConfig(model=model, base_url=address.base_url, host=address.base_url.split("://", 1)[-1],
                       load=spec, api=api or b.api, prompts=prompts or b.prompts,
                       max_tokens=max_tokens or b.max_tokens, options=parse_options(options), slo=objectives,
                       timeout=timeout or b.timeout, connect_timeout=settings.client.connect_timeout, label=label,
                       sweep=sweep, sweep_max=sweep_max)
