"""What a bench run returns (one data model; the renderers and `--json` show it) and its live progress snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ollama_ops.core.bench.metrics import BenchSummary
from ollama_ops.core.bench.sweep import SweepResult

RunStatus = Literal["completed", "interrupted", "failed"]
Phase = Literal["warmup", "run"]


@dataclass
class Progress:
    """A snapshot for the live view."""

    phase: Phase
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
    `core.bench.metrics.SERIES_POINTS`, beyond that an even thinning of them (every k-th request)."""

    send_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    e2el_s: list[float] = field(default_factory=list)


@dataclass
class BenchResult:
    """One bench run (for a sweep: its last step, with the sweep's steps and knee)."""

    run_id: int
    status: RunStatus
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
