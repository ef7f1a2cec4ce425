"""What a bench run returns (one data model; the renderers and `--json` show it), the error it ends with, and its
live progress snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ollama_ops.core.bench.lengths import LengthReport
from ollama_ops.core.bench.metrics import BenchSummary
from ollama_ops.core.bench.sweep import SweepResult
from ollama_ops.core.stats import Distribution
from ollama_ops.errors import Interrupted, RunFailed, SollamaError

RunStatus = Literal["completed", "interrupted", "failed"]
Phase = Literal["warmup", "run", "cooldown"]
NO_GATEWAY_QUEUE = ("absent: the server sent no X-Queue-Wait-Ms (not a sollama gateway), so any queueing shows only "
                    "in the server's own figures")


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
    excluded: list[tuple[str, float, float]] = field(default_factory=list)  # (phase, send offset, E2EL) of
    # successful warm-up / cool-down requests, evenly thinned like the others: marked on the timeline


@dataclass
class PhaseSpan:
    """One phase of a run on its timeline (seconds since the run's clock origin, as `BenchSeries.send_s`):
    its requests, first and last send, and last response. Only "run" counts in the figures."""

    phase: Phase
    requests: int
    first_send_s: float
    last_send_s: float
    last_end_s: float
    excluded: bool


@dataclass
class TurnStat:
    """TTFT of the n-th turn of every conversation (1-based): a prefix cache shows as later turns starting sooner
    than their longer prompts would say."""

    turn: int
    n: int
    ttft_p50: float
    ttft_p90: float


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
    lengths: LengthReport | None = None  # requested vs achieved token counts (server's count)
    synthetic: Any = None  # services.bench.synthetic.SyntheticInfo of a synthetic workload
    send_lag: Distribution | None = None  # open loop / trace: socket write − scheduled send time (seconds)
    turns: list[TurnStat] = field(default_factory=list)  # a --dataset run: TTFT by turn
    breakdown_absent: str | None = None  # why there is no server breakdown (the OpenAI APIs give no timings)
    phases: list[PhaseSpan] = field(default_factory=list)  # warm-up / measured / cool-down on the timeline
    gateway_queue_absent: str | None = None  # why summary.gateway_queue is None (no gateway in front)
    database: str = ""
    max_failures: str = "0"  # the failure budget the run was judged by (`--max-failures`)
    failure: str | None = None  # why the run fails as a CI step (None: it passed); a sweep: its first such step
    series: BenchSeries = field(default_factory=BenchSeries, metadata={"json_skip": True})


def exit_error(result: BenchResult) -> SollamaError | None:
    """The error `sollama bench` ends with once the result is shown: Ctrl-C (130), a run that failed its gate or
    lost its server or ran out of file descriptors (1); None when it passed."""
    from ollama_ops.client.protocol import too_many_open_files
    from ollama_ops.services.bench.runner import OUT_OF_FILES

    s = result.summary
    if result.status == "interrupted":
        return Interrupted(f"bench interrupted: {s.requests_ok + s.requests_failed} request(s) kept in run "
                           f"#{result.run_id}")
    if result.status == "failed" and result.stop_reason == OUT_OF_FILES:
        return too_many_open_files(f"run #{result.run_id} kept {s.requests_ok} successful request(s) and is marked "
                                   "failed; lower --concurrency")
    if result.status == "failed":
        return RunFailed(f"the server stopped answering; run #{result.run_id} kept {s.requests_ok} successful "
                         "request(s) and is marked failed")
    if result.failure is not None:
        return RunFailed(f"bench run #{result.run_id} failed: {result.failure}",
                         hint=None if result.summary.requests_ok == 0 else "--max-failures N or P% allows some")
    return None
