"""The data of the HTML bench report (`--html FILE` on `report RUN`, `report --compare` and `bench`).

Everything the page shows is built here, as dataclasses: the run's figures (`report.RunDetail`) or the comparison
(`compare.Comparison`), and the charts as ready-to-plot series (bins, thinned points, bucketed means, stacked
tops, interval ends). The renderer (`ollama_ops.render.html`) only lays them out. A bench run and a stored run
share one path: `bench --html` builds the report of the run it just stored, so both pages are the same.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ollama_ops import __version__
from ollama_ops.core import chart_data
from ollama_ops.errors import SollamaError

if TYPE_CHECKING:
    from ollama_ops.core.bench.metrics import BenchSummary
    from ollama_ops.edges.store import RequestRecord, RunRecord, Store
    from ollama_ops.services.compare import Comparison
    from ollama_ops.services.report import RunDetail, RunFigures

# Most points of a per-request series (latency over time) and buckets of the breakdown over time: enough to see
# the shape, small enough that a 10,000-request run's page stays a few hundred KB.
SERIES_CAP = 2000
BREAKDOWN_BUCKETS = 30


@dataclass
class ChartSeries:
    """One plotted series. `x` is its own x values in a facet chart (None: the chart's shared `x`); `legend` the
    values shown on hover where they differ from the plotted ones (a stacked bar's part, not its running sum)."""

    label: str
    y: list[float | None]
    style: str = "line"  # line | points | bars
    role: str = ""       # colour role: ttft, e2el, itl, tokens, part:<key>, a verdict, threshold, slo, knee
    x: list[float] | None = None
    legend: list[float] | None = None


@dataclass
class Chart:
    """One chart: a shared x with aligned series, or (`facets`) series with their own x and y."""

    id: str
    title: str
    x_label: str
    y_label: str
    series: list[ChartSeries]
    x: list[float] = field(default_factory=list)
    facets: bool = False
    x_ticks: list[str] = field(default_factory=list)  # names of the integer x positions (categories)
    note: str = ""


@dataclass
class SweepRow:
    run_id: int
    load: str
    load_value: float
    status: str
    request_rate: float | None
    output_throughput: float | None
    ttft_p50: float | None
    e2el_p50: float | None
    slo_attainment: float | None
    meets_slo: bool
    knee: bool = False


@dataclass
class HtmlReport:
    """A whole page: one run (`detail`) or a comparison (`comparison`), with its charts."""

    title: str
    generated_at: float
    sollama_version: str
    charts: list[Chart]
    detail: RunDetail | None = None
    comparison: Comparison | None = None
    sweep: list[SweepRow] = field(default_factory=list)
    slo: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class HtmlWritten:
    path: str
    bytes: int
    charts: int


# -- one run -----------------------------------------------------------------------------------------------------

def _ms(values: list[float]) -> list[float]:
    return [v * 1000.0 for v in values]


def _histogram_chart(chart_id: str, title: str, values_s: list[float], role: str, n_label: str) -> Chart:
    hist = chart_data.histogram(_ms(values_s))
    return Chart(id=chart_id, title=title, x_label=f"{title} (ms)", y_label=n_label, x=hist.centers,
                 series=[ChartSeries(label=n_label, y=list(hist.counts), style="bars", role=role)],
                 note=f"{len(values_s)} values in {len(hist.counts)} bins" + (
                     f" of {hist.width:.3g} ms" if hist.width else ""))


def _over_time_chart(ok: list[RequestRecord], start: float, excluded: list[RequestRecord] | None = None) -> Chart:
    """TTFT and E2EL of each measured request by send time; the warm-up and cool-down requests (`excluded`) as
    series of their own, so the page shows where the measured window begins and ends."""
    from ollama_ops.core.bench.phases import PHASE_LABELS

    rows = sorted([*ok, *(excluded or [])], key=lambda r: r.send_time)
    nan = float("nan")
    codes = {"warmup": 1.0, "cooldown": 2.0}
    columns = chart_data.thin([[r.send_time - start for r in rows],
                               [nan if r.ttft is None or r.warmup else r.ttft * 1000 for r in rows],
                               [nan if r.warmup else (r.e2el or 0.0) * 1000 for r in rows],
                               [codes.get(r.phase, 0.0) for r in rows],
                               [(r.e2el or 0.0) * 1000 for r in rows]], SERIES_CAP)

    def gaps(values: list[float]) -> list[float | None]:
        return [None if v != v else v for v in values]  # NaN → a gap

    series = [ChartSeries("TTFT ms", gaps(columns[1]), style="points", role="ttft"),
              ChartSeries("E2EL ms", gaps(columns[2]), style="points", role="e2el")]
    for phase, code in codes.items():
        ys: list[float | None] = [e if c == code else None for c, e in zip(columns[3], columns[4], strict=True)]
        if any(v is not None for v in ys):
            series.append(ChartSeries(f"{PHASE_LABELS[phase]} E2EL ms (excluded)", ys, style="points", role=phase))
    thinned = len(columns[0]) < len(rows)
    marked = {p: sum(1 for r in rows if r.phase == p) for p in codes}
    note = (f"every request ({len(rows)})" if not thinned else f"{len(columns[0])} of {len(rows)} requests, "
            "evenly spread")
    if any(marked.values()):
        note += "; " + ", ".join(f"{n} {PHASE_LABELS[p]}" for p, n in marked.items() if n) + \
            " request(s) marked, not in any figure"
    return Chart(id="over-time", title="Latency over time", x_label="send time (s since the first request)",
                 y_label="ms", x=columns[0], series=series, note=note)


def _breakdown_chart(ok: list[RequestRecord], start: float) -> Chart | None:
    from ollama_ops.core.bench.metrics import BREAKDOWN_LABELS, request_parts

    rows = sorted((r for r in ok if r.total_s and r.e2el), key=lambda r: r.send_time)
    if not rows:
        return None
    parts = [request_parts(r.load_s or 0.0, r.prompt_eval_s or 0.0, r.eval_s or 0.0, r.total_s or 0.0,
                           r.queue_s or 0.0) for r in rows]
    keys = list(BREAKDOWN_LABELS)
    centers, means, counts = chart_data.bucket_means(
        [r.send_time - start for r in rows], [[p[k] * 1000 for p in parts] for k in keys], BREAKDOWN_BUCKETS)
    tops = chart_data.stacked(means)
    # the tallest (last) part first, so each shorter stack is drawn over it
    series = [ChartSeries(label=BREAKDOWN_LABELS[k], y=list(tops[i]), style="bars", role=f"part:{k}",
                          legend=means[i]) for i, k in reversed(list(enumerate(keys)))]
    return Chart(id="breakdown", title="Server breakdown over time", x_label="send time (s since the first request)",
                 y_label="ms (mean per request, stacked)", x=centers, series=series,
                 note=f"{len(rows)} requests in {len(counts)} groups by send time; each bar stacks the mean of each "
                      "part")


def _run_charts(requests: list[RequestRecord]) -> list[Chart]:
    """The charts of one run from its request rows (warm-up and cool-down included: marked on the timeline)."""
    from ollama_ops.services.report import metric_samples

    ok = [r for r in requests if r.ok and not r.warmup and r.e2el is not None]
    if not ok:
        return []
    excluded = [r for r in requests if r.ok and r.warmup and r.e2el is not None]
    start = min(r.send_time for r in requests)
    samples = metric_samples(ok)
    charts = [_histogram_chart("ttft", "TTFT", samples["ttft"], "ttft", "requests"),
              _histogram_chart("e2el", "E2EL", samples["e2el"], "e2el", "requests"),
              _histogram_chart("itl", "ITL", samples["itl"], "itl", "gaps"),
              _over_time_chart(ok, start, excluded)]
    breakdown = _breakdown_chart(ok, start)
    if breakdown is not None:
        charts.append(breakdown)
    return [c for c in charts if any(s.y for s in c.series)]


def sweep_rows(store: Store, run: RunRecord) -> tuple[list[SweepRow], dict[str, float]]:
    """The steps of the sweep `run` belongs to, each scored and the knee marked by the rules the sweep itself
    used (`core.bench.sweep.score_step` and `knee`), and its SLO."""
    from ollama_ops.core.bench.load import LoadSpec, describe_load
    from ollama_ops.core.bench.sweep import SweepStep, knee, score_step
    from ollama_ops.services.report import figures

    rows: list[SweepRow] = []
    steps: list[SweepStep] = []
    slo: dict[str, float] = {}
    for i, step in enumerate(store.runs(sweep_id=run.sweep_id)):
        fig = figures(store.requests(step.id))
        stored = step.summary or {}
        slo = {str(k): float(v) for k, v in (stored.get("slo") or {}).items()} or slo
        spec = LoadSpec(concurrency=step.load.get("concurrency") or 1, rate=step.load.get("rate"))
        scored = score_step(i, spec, step.id, step.status, _scoring_summary(fig, stored),
                            steps[-1] if steps else None, has_slo=bool(stored.get("slo")))
        steps.append(scored)
        rows.append(SweepRow(run_id=step.id, load=describe_load(step.load),
                             load_value=float(step.load.get("rate") or step.load.get("concurrency") or 0),
                             status=step.status, request_rate=fig.request_rate, output_throughput=fig.output_throughput,
                             ttft_p50=fig.ttft_p50, e2el_p50=fig.e2el_p50, slo_attainment=scored.slo_attainment,
                             meets_slo=scored.meets_slo))
    best = knee(steps)
    for row in rows:
        row.knee = best is not None and row.run_id == best.run_id
    return rows, slo


def _scoring_summary(fig: RunFigures, stored: dict[str, Any]) -> BenchSummary:
    """A stored step as `score_step` reads it: throughputs and medians from its request rows (as the rest of the
    report shows them), SLO attainment from its stored summary. `score_step` reads nothing else: token totals
    stay zero and each distribution holds only its median."""
    from ollama_ops.core.bench.metrics import BenchSummary
    from ollama_ops.core.stats import Distribution

    def median_only(p50: float | None) -> Distribution | None:
        return None if p50 is None else Distribution(n=fig.ok, mean=p50, min=p50, p50=p50, p90=p50, p95=p50,
                                                     p99=p50, max=p50)

    return BenchSummary(
        requests_ok=fig.ok, requests_failed=fig.failed, errors=fig.errors, duration_s=fig.duration_s or 0.0,
        request_throughput=fig.request_rate or 0.0, output_throughput=fig.output_throughput or 0.0,
        total_token_throughput=0.0, output_tokens=0, prompt_tokens=0, output_tokens_source="none",
        ttft=median_only(fig.ttft_p50), tpot=median_only(fig.tpot_p50), itl=None, e2el=median_only(fig.e2el_p50),
        breakdown=None, slo=stored.get("slo") or {}, slo_attainment=stored.get("slo_attainment"))


def _sweep_chart(rows: list[SweepRow], slo: dict[str, float]) -> Chart | None:
    points = [r for r in rows if r.output_throughput is not None]
    if len(points) < 2:
        return None
    xs = [r.output_throughput or 0.0 for r in points]
    series = []
    for key, role in (("ttft_p50", "ttft"), ("e2el_p50", "e2el")):
        ys = [None if getattr(r, key) is None else getattr(r, key) * 1000 for r in points]
        series.append(ChartSeries(f"{role.upper()} p50 ms", ys, style="line", role=role, x=xs))
    lo, hi = min(xs), max(xs)
    for key in ("ttft", "e2el"):
        if key in slo:
            series.append(ChartSeries(f"SLO {key.upper()} {slo[key] * 1000:g} ms", [slo[key] * 1000] * 2,
                                      style="line", role="slo", x=[lo, hi]))
    knee = next((r for r in points if r.knee), None)
    if knee is not None and knee.e2el_p50 is not None:
        series.append(ChartSeries(f"knee: {knee.load} (run {knee.run_id})", [knee.e2el_p50 * 1000],
                                  style="points", role="knee", x=[knee.output_throughput or 0.0]))
    return Chart(id="sweep", title="Sweep: latency against throughput", x_label="output tok/s",
                 y_label="ms (p50)", series=series, facets=True,
                 note=f"{len(points)} steps, load rising along each curve" + (
                     f"; knee at {knee.load}" if knee else "; no knee (no step met the SLO)"))


def run_report(store: Store, run_id: int) -> HtmlReport:
    """The report of one stored run (a sweep step brings the whole sweep along)."""
    from ollama_ops.services.report import show_run

    detail = show_run(store, run_id)
    requests = store.requests(run_id, include_warmup=True)
    charts = _run_charts(requests)
    sweep: list[SweepRow] = []
    slo = {str(k): float(v) for k, v in ((detail.run.summary or {}).get("slo") or {}).items()}
    if detail.run.sweep_id:
        sweep, sweep_slo = sweep_rows(store, detail.run)
        slo = slo or sweep_slo
        chart = _sweep_chart(sweep, slo)
        if chart is not None:
            charts.append(chart)
    detail.samples = []  # the page draws from the charts; the per-request samples would only weigh it down
    title = f"sollama bench run {run_id}" + (f" ({detail.run.label})" if detail.run.label else "")
    return HtmlReport(title=title, generated_at=time.time(), sollama_version=__version__, charts=charts,
                      detail=detail, sweep=sweep, slo=slo)


# -- comparison --------------------------------------------------------------------------------------------------

def _compare_chart(data: Comparison) -> Chart | None:
    metrics = [m for m in data.metrics if m.gated and m.change is not None]
    if not metrics:
        return None
    series = []
    for i, m in enumerate(metrics):
        assert m.change is not None
        series.append(ChartSeries(f"{m.title} 95% interval", [m.change.lo_pct, m.change.hi_pct], style="line",
                                  role=m.verdict, x=[float(i), float(i)]))
    for verdict in ("regressed", "improved", "no change", "n/a"):
        chosen = [(i, m) for i, m in enumerate(metrics) if m.verdict == verdict]
        if chosen:
            series.append(ChartSeries(f"change: {verdict}", [m.change.point_pct for _, m in chosen if m.change],
                                      style="points", role=verdict, x=[float(i) for i, _ in chosen]))
    edge = [-0.5, len(metrics) - 0.5]
    t = data.threshold_pct
    series.append(ChartSeries(f"threshold +{t:g}%", [t, t], style="line", role="threshold", x=edge))
    series.append(ChartSeries(f"threshold −{t:g}%", [-t, -t], style="line", role="threshold", x=edge))
    return Chart(id="compare", title="Change of each gated metric (candidate vs base)", x_label="metric",
                 y_label="change %", series=series, facets=True, x_ticks=[m.title for m in metrics],
                 note=f"point = change of the statistic, bar = its {data.confidence:.0%} bootstrap interval; "
                      f"regressed only when the whole interval lies beyond ±{t:g}% on the bad side")


def compare_report(data: Comparison) -> HtmlReport:
    """The report of a comparison (`services.compare.compare`'s result)."""
    chart = _compare_chart(data)
    base = ", ".join(f"#{i}" for i in data.base.run_ids)
    cand = ", ".join(f"#{i}" for i in data.candidate.run_ids)
    return HtmlReport(title=f"sollama compare: {base} → {cand}", generated_at=time.time(),
                      sollama_version=__version__, charts=[chart] if chart else [], comparison=data,
                      warnings=list(data.warnings))


# -- writing -----------------------------------------------------------------------------------------------------

def check_target(path: str) -> None:
    """Fail early (before a bench runs) when `path` cannot be written: its folder missing or read-only."""
    target = Path(path).expanduser()
    folder = target.parent
    if target.is_dir():
        raise SollamaError(f"cannot write {path}: it is a directory")
    if not folder.is_dir():
        raise SollamaError(f"cannot write {path}: no folder {folder}")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise SollamaError(f"cannot write {path}: permission denied")


def write_html(text: str, path: str, charts: int) -> HtmlWritten:
    """Write a rendered page to `path` (0600 when created: it names hosts and models); SollamaError when it
    cannot."""
    data = text.encode("utf-8")
    target = Path(path).expanduser()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise SollamaError(f"cannot write {path}: {exc.strerror or exc}") from None
    return HtmlWritten(path=str(target), bytes=len(data), charts=charts)
