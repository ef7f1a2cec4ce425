"""`sollama bench`: measure latency and throughput under a controlled load, and store every request.

`run_bench(config)` does one run or a sweep: it checks the server and model (`session.preflight`), fixes the
payloads, runs one continuous load on the `runner` over one `client.transport.Transport` (warm-up, measured and
cool-down requests, each given its phase by `core.bench.phases.PhaseTimeline` when it is sent), writes request
rows to the history as it goes (batched commits, held back while a scheduled send is due), and returns a
`BenchResult`. Ctrl-C or a dead server end the
run early: what was measured is kept and the run is marked interrupted / failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import signal
import time
from collections.abc import Callable
from typing import Any

from ollama_ops import __version__
from ollama_ops.client.transport import Transport
from ollama_ops.core.bench.apis import API_PATHS, NO_BREAKDOWN, is_openai
from ollama_ops.core.bench.gate import run_failure
from ollama_ops.core.bench.lengths import length_warnings
from ollama_ops.core.bench.load import LoadSpec
from ollama_ops.core.bench.metrics import SERIES_POINTS, MetricsAccumulator
from ollama_ops.core.bench.phases import PHASES, PhaseTimeline, as_phase
from ollama_ops.core.bench.prompts import PayloadPlan, plan_payloads
from ollama_ops.core.bench.quantiles import EvenSample
from ollama_ops.core.bench.records import RequestRecord, RunMeta
from ollama_ops.errors import UsageError
from ollama_ops.services.bench.config import BenchConfig, load_prompts, load_settings
from ollama_ops.services.bench.result import (
    NO_GATEWAY_QUEUE,
    BenchResult,
    BenchSeries,
    PhaseSpan,
    Progress,
    RunStatus,
    TurnStat,
)
from ollama_ops.services.bench.runner import OUT_OF_FILES, Runner
from ollama_ops.services.bench.session import open_session, open_transport, preflight, system_facts
from ollama_ops.services.bench.sweep import run_sweep

_PHASE_CODES: dict[str, float] = {name: float(i) for i, name in enumerate(PHASES)}
FLUSH_ROWS = 64
FLUSH_ROWS_MAX = 1024  # rows held back at most while sends are due (then a commit waits for no send)
FLUSH_SECONDS = 0.05
FLUSH_GUARD_S = 0.003  # a commit takes up to a few ms on a busy disk: none this close before a scheduled send
PROGRESS_SECONDS = 0.25
# A median share of E2EL spent waiting for a runner slot worth telling the user about.
SLOT_WAIT_SHARE = 0.2
# Concurrency from which chunks clocked at read time (not by the kernel) carry a visible client backlog.
BACKLOG_CONCURRENCY = 8
CHUNKS_WARNING = ("the server sent no eval_count: output tokens were counted as text chunks, which may differ "
                  "from the model's tokens")


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
        self.runner: Runner | None = None
        # per phase: [requests, first send, last send, last end] (seconds since epoch0), for the timeline marks
        self.spans: dict[str, list[float]] = {}
        self.excluded = EvenSample(3, SERIES_POINTS)  # (phase code, send offset, E2EL) of excluded requests

    def __call__(self, record: RequestRecord) -> None:
        if self.error is not None:
            raise self.error
        self.rows.append(record)
        offset = record.send_time - self.epoch0
        end = offset + (record.e2el or 0.0)
        span = self.spans.get(record.phase)
        if span is None:
            self.spans[record.phase] = [1, offset, offset, end]
        else:
            span[0] += 1
            span[1] = min(span[1], offset)
            span[2] = max(span[2], offset)
            span[3] = max(span[3], end)
        if record.warmup:
            if record.ok and record.e2el is not None:
                self.excluded.add(_PHASE_CODES[record.phase], offset, record.e2el)
        else:
            self.acc.add(record, record.send_time - self.epoch0)
            self.done += 1
            self.failed += not record.ok
            if record.ok and record.output_tokens_source == "chunks":
                self.chunk_counted = True
        if len(self.rows) >= FLUSH_ROWS and self._quiet() or len(self.rows) >= FLUSH_ROWS_MAX:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(FLUSH_SECONDS, self._timed_flush)
        if self.progress is not None:
            now = time.perf_counter()
            if now - self.last_progress >= PROGRESS_SECONDS:
                self.last_progress = now
                self.progress(self.done, self.failed)

    def _quiet(self) -> bool:
        """Whether a commit now would not hold up a scheduled send (an open loop's next one is not due within
        FLUSH_GUARD_S); a closed loop is always quiet enough."""
        wait = self.runner.next_send_in() if self.runner is not None else None
        return wait is None or wait > FLUSH_GUARD_S or wait < 0

    def _timed_flush(self) -> None:
        self._timer = None
        if not self._quiet() and len(self.rows) < FLUSH_ROWS_MAX:  # right after that send instead
            wait = self.runner.next_send_in() if self.runner is not None else None
            if wait is not None:
                self._timer = self._loop.call_later(max(0.0, wait) + 0.0005, self._timed_flush)
                return
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


def run_bench(config: BenchConfig, on_progress: Callable[[Progress], None] | None = None) -> BenchResult:
    """Run the bench (one run or a sweep) and return its result; never prints."""
    if config.api not in API_PATHS:
        raise UsageError(f"--api must be one of {' | '.join(API_PATHS)}, got {config.api!r}")
    plan = None
    if not config.synthetic and config.trace is None:
        conversations = config.dataset
        items = load_prompts(config.prompts) if conversations is None else [t for c in conversations for t in c]
        try:
            plan = plan_payloads(items, model=config.model, api=config.api, max_tokens=config.max_tokens,
                                 options=config.options, seed=config.load.seed)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if conversations is not None:
            first = 0
            plan.conversations = []
            for turns in conversations:
                plan.conversations.append(list(range(first, first + len(turns))))
                first += len(turns)
    _make_room_for_connections(config)
    return asyncio.run(_main(config, plan, on_progress))


def _make_room_for_connections(config: BenchConfig) -> None:
    """One socket per request in flight: raise the open-files limit that far, or say at once that it cannot be
    (an open loop without --max-concurrency has no bound known in advance; EMFILE then stops the run)."""
    from ollama_ops.edges.fds import ensure_open_files

    load = config.load
    if load.open_loop:
        if load.max_concurrency:
            ensure_open_files(load.max_concurrency, flag="--max-concurrency")
    else:
        most = max(load.concurrency, config.sweep_max) if config.sweep else load.concurrency
        ensure_open_files(most, flag="--sweep-max" if config.sweep and most > load.concurrency else "--concurrency")


async def _main(config: BenchConfig, plan: PayloadPlan | None,
                on_progress: Callable[[Progress], None] | None) -> BenchResult:
    from ollama_ops.edges.store import Store

    system = system_facts()
    async with open_session(config) as session:
        facts = await preflight(session, config.model, config.base_url)
        transport = open_transport(config, session)
        try:
            if plan is None and config.trace is not None:
                from ollama_ops.services.bench.synthetic import trace_plan

                plan, facts["synthetic"] = await trace_plan(config, transport, API_PATHS[config.api])
            elif plan is None:
                from ollama_ops.services.bench.synthetic import synthetic_plan

                spec = config.load
                total = None if config.sweep else spec.total_requests()
                plan, facts["synthetic"] = await synthetic_plan(config, transport, API_PATHS[config.api], total)
            assert plan is not None
            the_plan = plan
            with Store(config.store_path) as store:
                async def step(spec: LoadSpec, sweep_id: str | None = None, i: int | None = None) -> BenchResult:
                    return await _one_run(config, spec, transport, store, the_plan, facts, system, on_progress,
                                          sweep_id, i)

                if not config.sweep:
                    return await step(config.load)
                return await run_sweep(config.load, config.sweep_max, bool(config.slo), step)
        finally:
            transport.close()


async def _one_run(config: BenchConfig, spec: LoadSpec, transport: Transport, store: Any, plan: PayloadPlan,
                   facts: dict[str, Any], system: dict[str, Any], on_progress: Callable[[Progress], None] | None,
                   sweep_id: str | None = None, step: int | None = None) -> BenchResult:
    load = load_settings(config, spec)
    meta = RunMeta(model=config.model, host=config.host, label=config.label, api=config.api,
                   ollama_version=facts.get("version"), model_digest=facts.get("digest"), load=load,
                   sollama_version=__version__, system=system, sweep_id=sweep_id, sweep_step=step)
    run_id = store.create_run(meta)
    acc = MetricsAccumulator(config.slo)
    path = API_PATHS[config.api]
    runner: Runner | None = None
    t_start = time.perf_counter()
    run_total = spec.requests if spec.duration is None else None
    step_text = "" if step is None else (f"step {step + 1}: " + (f"rate {spec.rate:g}/s" if spec.open_loop
                                                                   else f"concurrency {spec.concurrency}"))

    def progress(done: int, failed: int) -> None:
        if on_progress is not None and runner is not None:
            name = runner.timeline.phase or "cooldown"
            on_progress(Progress(phase=name, done=done, failed=failed, total=run_total,
                                 elapsed_s=time.perf_counter() - t_start, duration_s=spec.duration,
                                 in_flight=runner.in_flight, step=step_text))

    sink = _Sink(store, run_id, acc, 0.0, progress if on_progress else None)
    runner = Runner(transport, path, plan, sink)
    sink.epoch0 = runner.epoch0
    sink.runner = runner
    timeline = PhaseTimeline(as_phase(spec.warmup), spec.requests if spec.duration is None else None,
                             spec.duration, as_phase(spec.cooldown))
    runner.timeline = timeline
    reads0 = list(transport.reads)
    restore = _trap_sigint(runner)
    frozen = _freeze_gc()
    try:
        progress(0, 0)
        await runner.run(spec, timeline)
        progress(sink.done, sink.failed)
    except BaseException as exc:
        _abandon(store, sink, run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    finally:
        restore()
        if frozen:
            gc.unfreeze()
    sink.flush()
    summary = acc.summary(runner.wall_s)
    status: RunStatus = ("interrupted" if runner.stop_reason == "interrupted"
                         else "failed" if runner.stop_reason in ("server unreachable", OUT_OF_FILES) else "completed")
    warnings = [CHUNKS_WARNING] if sink.chunk_counted else []
    clock = (arrival_clock(transport.reads[0] - reads0[0], transport.reads[1] - reads0[1])
             if transport.kernel_stamps else "event loop")
    if clock != "kernel" and runner.peak_in_flight >= BACKLOG_CONCURRENCY:
        warnings.append(f"chunk arrivals were clocked when the event loop read them ({clock}): with up to "
                        f"{runner.peak_in_flight} requests in flight, TTFT and ITL include the client's own backlog "
                        "(~1-2 ms at 32)")
    lengths = runner.lengths.result()
    send_lag = runner.send_lag.describe()
    turns = [TurnStat(turn=t + 1, n=len(q), ttft_p50=q.quantile(50), ttft_p90=q.quantile(90))
             for t, q in sorted(runner.turn_ttft.items())]
    warnings.extend(length_warnings(lengths, config.api))
    wait = summary.breakdown.wait_share if summary.breakdown else 0.0
    if wait >= SLOT_WAIT_SHARE:
        warnings.append(f"requests spent {wait:.0%} of their time (median) waiting for a runner slot: the load exceeds "
                        "OLLAMA_NUM_PARALLEL; `sollama memory --parallel N` shows whether more slots fit")
    stopped = "the server stopped answering" if runner.stop_reason == "server unreachable" else runner.stop_reason
    failure = (run_failure(summary.requests_ok, summary.requests_failed, summary.errors, config.max_failures)
               if status == "completed" else None if status == "interrupted" else stopped)
    synthetic = facts.get("synthetic")
    extra = {"arrival_clock": clock, "lengths": dataclasses.asdict(lengths),
             "send_lag": None if send_lag is None else dataclasses.asdict(send_lag),
             "turns": [dataclasses.asdict(t) for t in turns]}
    if synthetic is not None:
        extra["synthetic"] = dataclasses.asdict(synthetic)
    phases = [PhaseSpan(phase=name, requests=int(span[0]), first_send_s=span[1], last_send_s=span[2],
                        last_end_s=span[3], excluded=name != "run")
              for name in PHASES if (span := sink.spans.get(name)) is not None]
    extra["phases"] = [dataclasses.asdict(p) for p in phases]
    store.finish_run(run_id, status, dataclasses.asdict(summary) | extra)
    send_s, ttft_s, e2el_s = acc.chart_series()
    codes, offsets, ends = sink.excluded.lists()
    series = BenchSeries(send_s=send_s, ttft_s=ttft_s, e2el_s=e2el_s,
                         excluded=[(PHASES[int(c)], x, y) for c, x, y in zip(codes, offsets, ends, strict=True)])
    return BenchResult(run_id=run_id, status=status, model=config.model, host=config.host, api=config.api,
                       label=config.label, ollama_version=facts.get("version"), model_digest=facts.get("digest"),
                       load=load, summary=summary, warnings=warnings, stop_reason=runner.stop_reason,
                       arrival_clock=clock, database=str(store.path), max_failures=str(config.max_failures),
                       failure=failure, series=series, lengths=lengths, synthetic=synthetic, send_lag=send_lag,
                       turns=turns, phases=phases,
                       gateway_queue_absent=NO_GATEWAY_QUEUE if summary.gateway_queue is None else None,
                       breakdown_absent=NO_BREAKDOWN if is_openai(config.api) else None)


def _freeze_gc() -> bool:
    """Move everything alive before the run out of the collector's view (`gc.freeze`): a full collection during
    the run then walks only the run's own objects, not the whole interpreter (a pause a send would wait for)."""
    if not hasattr(gc, "freeze"):
        return False
    gc.collect()
    gc.freeze()
    return True


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
