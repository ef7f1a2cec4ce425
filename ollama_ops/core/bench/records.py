"""The data model of a stored bench run, shared by the bench runner, the store and the report (pure dataclasses).

`ollama_ops.edges.store` persists these; `sollama report` reads them back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ollama_ops.core.bench.metrics import tpot

TokenSource = Literal["server", "chunks"]


@dataclass
class RunMeta:
    """What is known about a bench run before it starts (the argument of `Store.create_run`)."""

    model: str
    host: str = ""
    label: str | None = None
    api: str = "generate"
    started_at: float = field(default_factory=time.time)
    ollama_version: str | None = None
    model_digest: str | None = None
    load: dict[str, Any] = field(default_factory=dict)
    sollama_version: str | None = None
    system: dict[str, Any] = field(default_factory=dict)
    sweep_id: str | None = None
    sweep_step: int | None = None


@dataclass
class RunRecord:
    """One stored bench run. `status` reads "interrupted" for a run whose writer died while it was running."""

    id: int
    model: str
    started_at: float
    status: str
    host: str = ""
    label: str | None = None
    finished_at: float | None = None
    api: str = "generate"
    ollama_version: str | None = None
    model_digest: str | None = None
    load: dict[str, Any] = field(default_factory=dict)
    sollama_version: str | None = None
    system: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    sweep_id: str | None = None
    sweep_step: int | None = None
    request_count: int = 0


@dataclass
class RequestRecord:
    """One request of a run. Times are seconds; `send_time` is epoch seconds; `itl` are the inter-chunk gaps.

    `phase` is warmup | run | cooldown; `warmup` is true for every request excluded from the figures (warm-up or
    cool-down: the stored column of that name has always meant "not measured"), and follows `phase` when that is
    given. `gateway_queue_s`: the wait a sollama gateway reported (`X-Queue-Wait-Ms`), None when the server sent
    none. `turn`: the 1-based turn of a conversation (`--dataset`), else None."""

    idx: int
    send_time: float
    ok: bool
    warmup: bool = False
    ttft: float | None = None
    e2el: float | None = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    output_tokens_source: TokenSource = "server"
    prompt_tokens: int = 0
    load_s: float | None = None
    prompt_eval_s: float | None = None
    eval_s: float | None = None
    total_s: float | None = None
    queue_s: float | None = None
    error_kind: str | None = None
    error: str | None = None
    run_id: int | None = None
    phase: str = ""
    gateway_queue_s: float | None = None
    turn: int | None = None

    def __post_init__(self) -> None:
        if not self.phase:
            self.phase = "warmup" if self.warmup else "run"
        else:
            self.warmup = self.phase != "run"

    @property
    def tpot(self) -> float | None:
        """(E2EL − TTFT) / (output tokens − 1), defined only for more than one output token."""
        return tpot(self.ttft, self.e2el, self.output_tokens)
