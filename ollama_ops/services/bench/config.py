"""What one `sollama bench` asks for: flags over the `bench` config section → a validated `BenchConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from ollama_ops.core.bench.apis import APIS, header_names
from ollama_ops.core.bench.gate import FailureBudget
from ollama_ops.core.bench.load import Arrival, LoadSpec
from ollama_ops.core.bench.metrics import SLO
from ollama_ops.core.bench.phases import as_phase
from ollama_ops.core.bench.prompts import BUILTIN_SETS, PromptItem, builtin_prompts, parse_prompt_file
from ollama_ops.core.bench.synthetic import LengthSpec
from ollama_ops.errors import UsageError

Api = Literal["generate", "chat", "openai-chat", "openai-completions"]
MAX_PREFIX_TOKENS = 1 << 20


@dataclass
class BenchConfig:
    """Everything one `sollama bench` invocation asks for."""

    model: str
    base_url: str
    host: str = ""
    load: LoadSpec = field(default_factory=LoadSpec)
    api: Api = "generate"
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
    max_failures: FailureBudget = field(default_factory=FailureBudget)  # beyond it the run fails (exit 1)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # values may be secrets: never stored
    prompt_tokens: LengthSpec | None = None  # a synthetic workload when set
    output_tokens: LengthSpec | None = None
    prefix_tokens: int = 0
    dataset: list[list[PromptItem]] | None = field(default=None, repr=False)  # conversations, turns in order
    dataset_name: str | None = None
    trace: list[Any] | None = field(default=None, repr=False)  # core.bench.workload.TraceEntry
    trace_name: str | None = None
    speed: float = 1.0

    @property
    def synthetic(self) -> bool:
        return self.prompt_tokens is not None


def load_prompts(spec: str) -> list[PromptItem]:
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


def load_settings(config: BenchConfig, spec: LoadSpec) -> dict[str, Any]:
    """The load settings stored with a run (what `report --compare` pairs runs by)."""
    replay = config.trace is not None  # on the trace's own timeline: no concurrency, no rate
    return {"concurrency": None if spec.open_loop or replay else spec.concurrency, "rate": spec.rate,
            "arrival": spec.arrival if spec.open_loop else None, "max_concurrency": spec.max_concurrency,
            "requests": spec.requests, "duration": spec.duration, "warmup": as_phase(spec.warmup).describe(),
            **({"cooldown": as_phase(spec.cooldown).describe()} if spec.cooldown else {}),
            "max_tokens": config.max_tokens, "prompts": config.prompts, "seed": spec.seed,
            "options": dict(config.options), "timeout": config.timeout,
            **({"headers": header_names(config.headers)} if config.headers else {}),
            **({"prompt_tokens": config.prompt_tokens.describe(), "prefix_tokens": config.prefix_tokens,
                "output_tokens": config.output_tokens.describe() if config.output_tokens else None,
                "prompts": "synthetic"} if config.prompt_tokens else {}),
            **({"prompts": f"dataset:{config.dataset_name}"} if config.dataset is not None else {}),
            **({"prompts": f"trace:{config.trace_name}", "speed": config.speed} if config.trace is not None else {})}


def build_config(settings: Any, *, model: str, concurrency: int | None = None, rate: float | None = None,
                 arrival: str = "poisson", max_concurrency: int | None = None, requests: int | None = None,
                 duration: str | None = None, warmup: str | int | None = None, seed: int | None = 0,
                 api: str | None = None, prompts: str | None = None, max_tokens: int | None = None,
                 options: list[str] | None = None, slo: str | None = None, timeout: float | None = None,
                 label: str | None = None, sweep: bool = False, sweep_max: int = 64,
                 max_failures: str | None = None, headers: list[str] | None = None, api_key: str | None = None,
                 prompt_tokens: str | None = None, output_tokens: str | None = None,
                 prefix_tokens: int | None = None, dataset: str | None = None, trace: str | None = None,
                 speed: float | None = None, cooldown: str | int | None = None) -> BenchConfig:
    """Flags over the `bench` config section → a validated BenchConfig (UsageError on contradictions)."""
    from ollama_ops.core.bench.arrivals import ARRIVALS
    from ollama_ops.core.bench.gate import parse_max_failures
    from ollama_ops.core.bench.metrics import parse_slo
    from ollama_ops.core.hosts import parse_host
    from ollama_ops.core.options import check_flag_values, duration_seconds, parse_options

    b = settings.bench
    if api is not None and api not in APIS:
        raise UsageError(f"--api must be one of {' | '.join(APIS)}, got {api!r}")
    synthetic = _synthetic(prompt_tokens, output_tokens, prefix_tokens, prompts, max_tokens)
    recorded = _recorded(dataset, trace, speed, prompts, prompt_tokens, rate, concurrency)
    from ollama_ops.core.options import phase_size

    warm = phase_size("bench", "--warmup", b.warmup if warmup is None else warmup)
    cool = phase_size("bench", "--cooldown", 0 if cooldown is None else cooldown)
    if recorded and requests is None and duration is None:
        requests = recorded.pop("_requests")
        if "trace" in recorded:  # the trace is the timeline: its warm-up and cool-down come out of it
            from ollama_ops.core.bench.phases import PhaseSize, trace_counts

            offsets = [e.offset / recorded["speed"] for e in recorded["trace"]]
            counts = trace_counts(offsets, warm, cool)
            warm, cool = PhaseSize(count=counts[0]), PhaseSize(count=counts[1])
            requests -= sum(counts)
            if requests < 1:
                raise UsageError(f"--warmup and --cooldown leave no request of the {len(offsets)} in the trace "
                                 "to measure")
    recorded.pop("_requests", None)
    from ollama_ops.core.bench.apis import parse_headers

    try:
        extra_headers = parse_headers(headers, api_key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if rate is not None and concurrency is not None:
        raise UsageError("--rate (open loop) and --concurrency (closed loop) exclude each other",
                         hint="cap an open loop with --max-concurrency")
    if arrival not in ARRIVALS:
        raise UsageError(f"--arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
    if duration is not None and requests is not None:
        raise UsageError("--requests and --duration exclude each other")
    # the CLI's own ranges (core/options.py), for callers that come without the CLI
    check_flag_values("bench", {"--rate": rate, "--concurrency": concurrency, "--max-concurrency": max_concurrency,
                                "--requests": requests, "--max-tokens": max_tokens, "--sweep-max": sweep_max,
                                "--timeout": timeout, "--seed": seed})
    seconds = None if duration is None else duration_seconds("bench", "--duration", duration)
    try:
        objectives = parse_slo(slo)
    except ValueError as exc:
        raise UsageError(f"--slo: {exc}") from None
    try:
        budget = parse_max_failures(max_failures) if max_failures is not None else FailureBudget()
    except ValueError as exc:
        raise UsageError(f"--max-failures {exc}") from None
    spec = LoadSpec(concurrency=concurrency or b.concurrency, rate=rate, arrival=cast(Arrival, arrival),
                    max_concurrency=max_concurrency, requests=None if seconds else (requests or b.requests),
                    duration=seconds, warmup=warm, cooldown=cool, seed=seed)
    address = parse_host(settings.server.host)
    return BenchConfig(model=model, base_url=address.base_url, host=address.base_url.split("://", 1)[-1],
                       load=spec, api=cast(Api, api or b.api), prompts=prompts or b.prompts,
                       max_tokens=None if synthetic.get("output_tokens") else (max_tokens or b.max_tokens),
                       options=parse_options(options), slo=objectives,
                       timeout=timeout or b.timeout, connect_timeout=settings.client.connect_timeout, label=label,
                       sweep=sweep, sweep_max=sweep_max, max_failures=budget, headers=extra_headers, **synthetic,
                       **recorded)


def _recorded(dataset: str | None, trace: str | None, speed: float | None, prompts: str | None,
              prompt_tokens: str | None, rate: float | None, concurrency: int | None) -> dict[str, Any]:
    """--dataset / --trace FILE (read safely, parsed, validated) → BenchConfig fields, plus `_requests`: how many
    requests replay the file once."""
    from ollama_ops.core.bench.workload import parse_dataset, parse_trace
    from ollama_ops.edges.textfile import read_text_file

    if speed is not None and trace is None:
        raise UsageError("--speed scales a --trace timeline: add --trace FILE")
    if dataset is None and trace is None:
        return {}
    flag = "--dataset" if dataset is not None else "--trace"
    if dataset is not None and trace is not None:
        raise UsageError("--dataset and --trace exclude each other")
    for other, given in (("--prompts", prompts), ("--prompt-tokens", prompt_tokens)):
        if given is not None:
            raise UsageError(f"{flag} and {other} exclude each other")
    if trace is not None and rate is not None:
        raise UsageError("--trace and --rate exclude each other (a trace is replayed on its own timeline)")
    if trace is not None and concurrency is not None:
        raise UsageError("--trace replays requests on their own timeline: cap it with --max-concurrency, "
                         "not --concurrency")
    if speed is not None and not (0 < speed <= 1000 and speed == speed):
        raise UsageError(f"--speed must be greater than 0 and at most 1000, got {speed:g}")
    path = Path(dataset or trace or "").expanduser()
    text = read_text_file(path, what=f"{flag} file", error=UsageError)
    try:
        if dataset is not None:
            conversations = parse_dataset(text, path.name)
            return {"dataset": conversations, "dataset_name": path.name,
                    "_requests": sum(len(c) for c in conversations)}
        entries = parse_trace(text, path.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return {"trace": entries, "trace_name": path.name, "speed": speed or 1.0, "_requests": len(entries)}


def _synthetic(prompt_tokens: str | None, output_tokens: str | None, prefix_tokens: int | None,
               prompts: str | None, max_tokens: int | None) -> dict[str, Any]:
    """--prompt-tokens / --output-tokens / --prefix-tokens → BenchConfig fields (UsageError when they clash)."""
    from ollama_ops.core.bench.synthetic import parse_length

    if prompt_tokens is None:
        if output_tokens is not None or prefix_tokens:
            raise UsageError("--output-tokens and --prefix-tokens shape a synthetic workload: add --prompt-tokens")
        return {}
    if prompts is not None:
        raise UsageError("--prompt-tokens (synthetic prompts) and --prompts exclude each other")
    if output_tokens is not None and max_tokens is not None:
        raise UsageError("--output-tokens and --max-tokens exclude each other")
    if prefix_tokens is not None and not 0 <= prefix_tokens <= MAX_PREFIX_TOKENS:
        raise UsageError(f"--prefix-tokens must be between 0 and {MAX_PREFIX_TOKENS}, got {prefix_tokens}")
    try:
        return {"prompt_tokens": parse_length(prompt_tokens, "--prompt-tokens"),
                "output_tokens": None if output_tokens is None else parse_length(output_tokens, "--output-tokens"),
                "prefix_tokens": prefix_tokens or 0}
    except ValueError as exc:
        raise UsageError(str(exc)) from None
