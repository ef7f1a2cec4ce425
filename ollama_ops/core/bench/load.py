"""The shape of a bench load (pure): what `--concurrency`/`--rate` ask for, and how a stored run's load reads.

`LoadSpec` is what the runner executes; a stored run keeps its load as a plain dict (`services.bench.config.
load_settings`), which `describe_load` turns into the one short text every view shows and `load_key` into what two
runs must share to be compared by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ollama_ops.core.bench.phases import PhaseSize, as_phase

if TYPE_CHECKING:
    from ollama_ops.core.bench.records import RunRecord

Arrival = Literal["poisson", "constant"]

# Load settings that size a run rather than shape its load: runs differing only in these are comparable.
SIZE_KEYS = frozenset({"requests", "duration", "warmup", "cooldown", "seed", "timeout", "label"})


@dataclass
class LoadSpec:
    """How much load, and of which shape."""

    concurrency: int = 1
    rate: float | None = None  # open loop when set
    arrival: Arrival = "poisson"
    max_concurrency: int | None = None
    requests: int | None = 20
    duration: float | None = None
    warmup: PhaseSize | int = 0  # a count, a time or a percentage of the measured phase (`core.bench.phases`)
    seed: int | None = 0
    cooldown: PhaseSize | int = 0

    def __post_init__(self) -> None:
        self.warmup = as_phase(self.warmup)
        self.cooldown = as_phase(self.cooldown)

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    def total_requests(self) -> int | None:
        """Requests the whole run sends (warm-up and cool-down included) when all three phases are counts, else
        None (known only as it runs)."""
        if self.duration is not None or self.requests is None:
            return None
        sizes = [as_phase(p).resolve(self.requests, None) for p in (self.warmup, self.cooldown)]
        if any(s.seconds is not None for s in sizes):
            return None
        return self.requests + sum(s.count or 0 for s in sizes)


def describe_load(load: dict[str, Any]) -> str:
    """A short text for stored load settings: 'c=4 n=20', 'rate=2/s poisson max_c=8 30s', with max_tokens."""
    parts = []
    prompts = str(load.get("prompts", ""))
    if prompts.startswith("trace:"):  # its own timeline: neither a rate nor a concurrency
        parts.append(f"trace replay {prompts.removeprefix('trace:')}"
                     + (f" x{load['speed']:g}" if load.get("speed", 1) != 1 else "")
                     + (f" max_c={load['max_concurrency']}" if load.get("max_concurrency") else ""))
    elif load.get("rate"):
        parts.append(f"rate={load['rate']:g}/s" + (f" {load['arrival']}" if load.get("arrival") else ""))
        if load.get("max_concurrency"):
            parts.append(f"max_c={load['max_concurrency']}")
    elif load.get("concurrency") is not None:
        parts.append(f"c={load['concurrency']}")
    if load.get("requests"):
        parts.append(f"n={load['requests']}")
    elif load.get("duration"):
        parts.append(f"{load['duration']:g}s")
    if load.get("max_tokens"):
        parts.append(f"max_tokens={load['max_tokens']}")
    if load.get("prompt_tokens"):  # a synthetic workload (or a trace's recorded prompts below)
        parts.append(f"prompt_tokens={load['prompt_tokens']}"
                     + (f"+{load['prefix_tokens']}" if load.get("prefix_tokens") else "")
                     + (f" output_tokens={load['output_tokens']}" if load.get("output_tokens") else ""))
    elif prompts.startswith("dataset:"):
        parts.append(prompts)

    return " ".join(parts) or "-"


def load_key(run: RunRecord) -> tuple[Any, ...]:
    """What must match for two runs to be comparable by default: model, api and the shape of the load."""
    shape = sorted((k, repr(v)) for k, v in (run.load or {}).items() if k not in SIZE_KEYS)
    return (run.model, run.api, tuple(shape))
