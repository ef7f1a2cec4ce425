"""`sollama report`: the stored bench runs listed, one run shown, generate/chat usage summarised, runs exported.

Every function takes an open `Store` and returns a dataclass; nothing here prints. The comparison of two runs
(the CI gate) lives in `ollama_ops.services.compare`. Figures of a run come from its per-request rows (the source
of truth; the stored summary is only read for what the rows cannot give), so interrupted runs without a summary
show the same figures as completed ones.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ollama_ops.core.bench.load import describe_load
from ollama_ops.core.stats import Distribution, describe, median
from ollama_ops.errors import SollamaError

if TYPE_CHECKING:
    from ollama_ops.edges.store import RequestRecord, RunRecord, Store, UsageRow

@dataclass
class RunFigures:
    """Key figures of a run (or of pooled runs), computed from its non-warm-up request rows."""

    ok: int = 0
    failed: int = 0
    duration_s: float | None = None
    request_rate: float | None = None
    output_throughput: float | None = None
    ttft_p50: float | None = None
    tpot_p50: float | None = None
    e2el_p50: float | None = None
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class RunRow:
    """One line of `sollama report`."""

    id: int
    label: str | None
    started_at: float
    status: str
    model: str
    load: str
    figures: RunFigures


@dataclass
class RunList:
    runs: list[RunRow]
    database: str


@dataclass
class RequestSample:
    """What the charts of one run need per request. `offset_s`: send time since the run's first send."""

    idx: int
    offset_s: float
    ok: bool
    ttft: float | None
    e2el: float | None
    output_tokens: int
    error_kind: str | None = None
    phase: str = "run"  # warmup | run | cooldown: only "run" is in the figures
    gateway_queue_s: float | None = None
    turn: int | None = None


@dataclass
class LoadPoint:
    """One step of a sweep: the load it ran at and the throughput it reached."""

    run_id: int
    load: str
    load_value: float
    request_rate: float | None
    output_throughput: float | None
    ttft_p50: float | None


@dataclass
class BreakdownPart:
    """One part of a request's time by the server's account: median seconds and median share of E2EL."""

    part: str
    median_s: float
    median_share: float


@dataclass
class RunDetail:
    """`sollama report RUN`: the stored run, its figures and distributions, and per-request samples for charts."""

    run: RunRecord
    load: str
    figures: RunFigures
    metrics: dict[str, Distribution | None]
    samples: list[RequestSample]
    breakdown: list[BreakdownPart] = field(default_factory=list)
    sweep: list[LoadPoint] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)  # warm-up / cool-down requests (not in the figures)


@dataclass
class ModelUsage:
    model: str
    requests: int
    ok: int
    errors: int
    prompt_tokens: int
    eval_tokens: int
    median_total_s: float | None
    median_eval_rate: float | None
    group: str = ""  # the value grouped by (the model, the gateway key, or the UTC day)


@dataclass
class UsageSummary:
    """`sollama report --usage`: generate/chat/gateway usage per model, key or day over a window."""

    since: float | None
    model: str | None
    models: list[ModelUsage]
    requests: int
    by: str = "model"


USAGE_GROUPS = ("model", "key", "day")


def _usage_group(row: UsageRow, by: str) -> str:
    if by == "key":
        return row.key or f"({row.command})"
    if by == "day":
        return datetime.fromtimestamp(row.time, UTC).strftime("%Y-%m-%d")
    return row.model


# -- figures from request rows ---------------------------------------------------------------------------------

def metric_samples(requests: Iterable[RequestRecord]) -> dict[str, list[float]]:
    """Per-request samples of every latency metric, from the successful non-warm-up requests.

    ttft, tpot, e2el: one value per request; itl: every inter-chunk gap, pooled across requests; tokens and
    e2el_t: the output tokens and E2EL of the same requests, paired (for the per-stream token rate).
    """
    out: dict[str, list[float]] = {"ttft": [], "tpot": [], "itl": [], "e2el": [], "tokens": [], "e2el_t": []}
    for r in requests:
        if not r.ok or r.warmup:
            continue
        if r.ttft is not None:
            out["ttft"].append(r.ttft)
        tpot = r.tpot
        if tpot is not None:
            out["tpot"].append(tpot)
        out["itl"].extend(r.itl)
        if r.e2el is not None:
            out["e2el"].append(r.e2el)
            if r.e2el > 0:
                out["tokens"].append(float(r.output_tokens))
                out["e2el_t"].append(r.e2el)
    return out


def figures(requests: Sequence[RequestRecord]) -> RunFigures:
    """ok/failed counts, request/s and output tok/s over the wall time from first send to last response."""
    rows = [r for r in requests if not r.warmup]
    ok = [r for r in rows if r.ok]
    errors: dict[str, int] = {}
    for r in rows:
        if not r.ok:
            errors[r.error_kind or "error"] = errors.get(r.error_kind or "error", 0) + 1
    fig = RunFigures(ok=len(ok), failed=len(rows) - len(ok), errors=errors)
    if ok:
        start = min(r.send_time for r in rows)
        end = max(r.send_time + (r.e2el or 0.0) for r in ok)
        if end > start:
            fig.duration_s = end - start
            fig.request_rate = len(ok) / fig.duration_s
            fig.output_throughput = sum(r.output_tokens for r in ok) / fig.duration_s
    samples = metric_samples(ok)
    fig.ttft_p50 = median(samples["ttft"])
    fig.tpot_p50 = median(samples["tpot"])
    fig.e2el_p50 = median(samples["e2el"])
    return fig


def breakdown(requests: Sequence[RequestRecord]) -> list[BreakdownPart]:
    """Where the time of the successful requests went (requests without the server's timings are skipped)."""
    from ollama_ops.core.bench.metrics import BREAKDOWN_LABELS, request_parts, server_breakdown

    rows = [r for r in requests if r.ok and not r.warmup and r.total_s and r.e2el]
    parts: dict[str, list[float]] = {key: [] for key in BREAKDOWN_LABELS}
    for r in rows:
        for key, value in request_parts(r.load_s or 0.0, r.prompt_eval_s or 0.0, r.eval_s or 0.0, r.total_s or 0.0,
                                        r.queue_s or 0.0).items():
            parts[key].append(value)
    summary = server_breakdown(parts, [r.e2el or 0.0 for r in rows])
    if summary is None:
        return []
    return [BreakdownPart(part=label, median_s=sec, median_share=share) for label, sec, share in summary.rows()]


def pooled_figures(runs: Sequence[Sequence[RequestRecord]]) -> RunFigures:
    """Figures of several runs pooled: counts and latency medians over all requests, throughput summed over
    each run's own wall time (runs do not overlap in time, so their gaps must not count)."""
    pooled = figures([r for rows in runs for r in rows])
    per_run = [figures(rows) for rows in runs]
    duration = sum(f.duration_s or 0.0 for f in per_run)
    if duration > 0:
        pooled.duration_s = duration
        pooled.request_rate = pooled.ok / duration
        tokens = sum(r.output_tokens for rows in runs for r in rows if r.ok and not r.warmup)
        pooled.output_throughput = tokens / duration
    return pooled


# -- list / show -----------------------------------------------------------------------------------------------

def list_runs(store: Store, *, last: int | None = None, label: str | None = None,
              model: str | None = None) -> RunList:
    """The stored runs, oldest first, with key figures; `last` keeps the newest N."""
    rows = []
    for run in store.runs(last=last, label=label, model=model):
        fig = summary_figures(run.summary) if run.summary else None
        rows.append(RunRow(id=run.id, label=run.label, started_at=run.started_at, status=run.status,
                           model=run.model, load=describe_load(run.load),
                           figures=fig or figures(store.requests(run.id))))
    return RunList(runs=rows, database=str(store.path))


def summary_figures(summary: dict[str, Any]) -> RunFigures | None:
    """Key figures from a stored bench summary (`core.bench.metrics.BenchSummary` as a dict), so that listing
    many long runs does not read every request row; None when the summary lacks them."""
    try:
        def p50(name: str) -> float | None:
            dist = summary.get(name)
            return float(dist["p50"]) if dist else None

        return RunFigures(ok=int(summary["requests_ok"]), failed=int(summary["requests_failed"]),
                          duration_s=float(summary["duration_s"]),
                          request_rate=float(summary["request_throughput"]),
                          output_throughput=float(summary["output_throughput"]),
                          ttft_p50=p50("ttft"), tpot_p50=p50("tpot"), e2el_p50=p50("e2el"),
                          errors={str(k): int(v) for k, v in (summary.get("errors") or {}).items()})
    except (KeyError, TypeError, ValueError):
        return None


def show_run(store: Store, run_id: int) -> RunDetail:
    """One run: its metadata, figures, distributions of each metric, per-request samples, and its sweep."""
    run = store.run(run_id)
    every = store.requests(run_id, include_warmup=True)  # warm-up and cool-down only for the timeline
    requests = [r for r in every if not r.warmup]
    samples = metric_samples(requests)
    metrics = {name: describe(samples[name]) for name in ("ttft", "tpot", "itl", "e2el")}
    metrics["output_tokens"] = describe([float(r.output_tokens) for r in requests if r.ok])
    waits = [r.gateway_queue_s for r in requests if r.gateway_queue_s is not None]
    if waits:
        metrics["gateway_queue"] = describe(waits)
    start = min((r.send_time for r in every), default=0.0)
    points = [RequestSample(idx=r.idx, offset_s=r.send_time - start, ok=r.ok, ttft=r.ttft, e2el=r.e2el,
                            output_tokens=r.output_tokens, error_kind=r.error_kind, phase=r.phase,
                            gateway_queue_s=r.gateway_queue_s, turn=r.turn) for r in every]
    sweep = _sweep_points(store, run) if run.sweep_id else []
    excluded: dict[str, int] = {}
    for r in every:
        if r.warmup:
            excluded[r.phase] = excluded.get(r.phase, 0) + 1
    return RunDetail(run=run, load=describe_load(run.load), figures=figures(requests), metrics=metrics,
                     samples=points, breakdown=breakdown(requests), sweep=sweep, excluded=excluded)


def _sweep_points(store: Store, run: RunRecord) -> list[LoadPoint]:
    points = []
    for step in store.runs(sweep_id=run.sweep_id):
        fig = figures(store.requests(step.id))
        value = step.load.get("rate") or step.load.get("concurrency") or 0
        points.append(LoadPoint(run_id=step.id, load=describe_load(step.load), load_value=float(value),
                                request_rate=fig.request_rate, output_throughput=fig.output_throughput,
                                ttft_p50=fig.ttft_p50))
    return sorted(points, key=lambda p: (p.load_value, p.run_id))


# -- usage -----------------------------------------------------------------------------------------------------

def usage_summary(store: Store, *, since: float | None = None, model: str | None = None,
                  by: str = "model") -> UsageSummary:
    """Per model (or gateway key, or UTC day): requests, ok/error, prompt/eval tokens, median total latency and
    median eval rate (tok/s). Rows without a key (local generate/chat) group as "(generate)" / "(chat)"."""
    groups: dict[str, list[UsageRow]] = {}
    for row in store.usage_rows(since=since, model=model):
        groups.setdefault(_usage_group(row, by), []).append(row)
    order = sorted(groups.items(), key=(lambda item: item[0]) if by == "day" else
                   (lambda item: (-len(item[1]), item[0])))
    models = []
    for name, rows in order:
        ok = [r for r in rows if r.outcome == "ok"]
        rates = [r.eval_tokens / r.eval_s for r in ok if r.eval_s and r.eval_s > 0 and r.eval_tokens]
        models.append(ModelUsage(model=name if by == "model" else ",".join(sorted({r.model for r in rows})),
                                 requests=len(rows), ok=len(ok), errors=len(rows) - len(ok),
                                 prompt_tokens=sum(r.prompt_tokens for r in rows),
                                 eval_tokens=sum(r.eval_tokens for r in rows),
                                 median_total_s=median([r.total_s for r in ok if r.total_s]),
                                 median_eval_rate=median(rates), group=name))
    return UsageSummary(since=since, model=model, models=models, requests=sum(m.requests for m in models), by=by)


def parse_run_id(text: str) -> int | None:
    """A run id as the commands take it ('12' or '#12'), or None when `text` is not one. Decimal digits, the
    ones `int` reads: '²' is a digit to `str.isdigit`, not a number to `int`."""
    digits = text.strip().lstrip("#")
    return int(digits) if digits.isdecimal() else None


def since_epoch(window: str | None, now: float | None = None) -> float | None:
    """'7d', '2w', '12h', '30m' (`core.units.parse_window`) → the epoch that long ago; None for no window.
    Raises UsageError naming --since, with the range of `report --since` in `core.options.DURATION_FLAGS`."""
    if not window:
        return None
    from ollama_ops.core.options import duration_seconds

    return (time.time() if now is None else now) - duration_seconds("report", "--since", window)


# -- export ----------------------------------------------------------------------------------------------------

EXPORT_COLUMNS = ("run_id", "idx", "warmup", "send_time", "ok", "ttft_s", "tpot_s", "e2el_s", "output_tokens",
                  "output_tokens_source", "prompt_tokens", "load_s", "prompt_eval_s", "eval_s", "total_s",
                  "queue_s", "itl_count", "itl_p50_s", "error_kind", "error", "phase", "gateway_queue_s", "turn")


@dataclass
class ExportResult:
    run_id: int
    rows: int
    path: str | None


def export_rows(store: Store, run_id: int) -> list[list[Any]]:
    """One row per request (warm-up and cool-down included: `warmup` 1 and their `phase`), in `EXPORT_COLUMNS`
    order."""
    store.run(run_id)  # a clear error for an unknown run
    rows = []
    for r in store.requests(run_id, include_warmup=True):
        rows.append([run_id, r.idx, int(r.warmup), f"{r.send_time:.6f}", int(r.ok), r.ttft, r.tpot, r.e2el,
                     r.output_tokens, r.output_tokens_source, r.prompt_tokens, r.load_s, r.prompt_eval_s,
                     r.eval_s, r.total_s, r.queue_s, len(r.itl), median(r.itl), r.error_kind, r.error, r.phase,
                     r.gateway_queue_s, r.turn])
    return rows


def export_csv(store: Store, run_id: int, path: str | None = None) -> tuple[ExportResult, str]:
    """The CSV text of a run's requests; written to `path` when given (then the text is returned too)."""
    rows = export_rows(store, run_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    text = buffer.getvalue()
    if path is not None:
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise SollamaError(f"cannot write {path}: {exc.strerror or exc}") from None
    return ExportResult(run_id=run_id, rows=len(rows), path=path), text
