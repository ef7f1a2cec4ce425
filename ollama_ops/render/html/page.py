"""The HTML bench report as one self-contained page: tables in plain HTML (readable without JavaScript), charts
drawn by the vendored uPlot from the series the service built, all inline (no request at view time).

Nothing here computes a figure: tables reuse the cells of the terminal/Markdown report, charts are the
`services.html_report.Chart`s serialised as JSON for `charts.js`, which only maps them onto uPlot options.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Container
from datetime import datetime
from importlib import resources
from typing import Any

from ollama_ops.services.html_report import Chart, HtmlReport, SweepRow

UPLOT_VERSION = "1.6.32"
HALF_WIDTH = frozenset({"ttft", "e2el"})  # distributions side by side; time series and comparisons full width


def _asset(name: str) -> str:
    return resources.files("ollama_ops.render.html").joinpath(name).read_text(encoding="utf-8")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: list[str] | tuple[str, ...], rows: list[list[str]], *, right: Container[int] = frozenset(),
           css: str = "", row_class: list[str] | None = None) -> str:
    head = "".join(f'<th{" class=num" if i in right else ""}>{_e(h)}</th>' for i, h in enumerate(header))
    body = []
    for n, row in enumerate(rows):
        cls = f' class="{_e(row_class[n])}"' if row_class and row_class[n] else ""
        cells = "".join(f'<td{" class=num" if i in right else ""}>{_e(c)}</td>' for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _facts(pairs: list[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs)
    return f'<dl class="facts">{items}</dl>'


def _system(system: dict[str, Any]) -> str:
    parts = [str(system[k]) for k in ("cpu", "os") if system.get(k)]
    if system.get("cores"):
        parts.append(f"{system['cores']} cores")
    if system.get("ram"):
        parts.append(f"RAM {system['ram'] / 2**30:.1f} GiB")
    for gpu in system.get("gpu") or []:
        parts.append(f"GPU {gpu.get('name')}")
    return " · ".join(parts) or "-"


def _run_section(report: HtmlReport) -> str:
    from ollama_ops.render.report import _BREAKDOWN_HEADER, _breakdown_cells, _detail_lines, _dist_cells

    detail = report.detail
    assert detail is not None
    run = detail.run
    facts = _detail_lines(detail)
    facts.insert(1, ("run", f"#{run.id}"))
    facts += [("sollama", run.sollama_version or "-"), ("system", _system(run.system or {}))]
    if report.slo:
        facts.append(("SLO", ", ".join(f"{k} ≤ {v * 1000:g} ms" for k, v in report.slo.items())))
    out = ["<section><h2>Run</h2>", _facts(facts), "</section>", "<section><h2>Latency</h2>",
           _table(["metric", "n", "mean", "p50", "p90", "p95", "p99", "max"], _dist_cells(detail), right=range(1, 8),
                  css="dist"), '<p class="note">Times per request (ITL: every gap between text chunks, pooled); '
           "output_tokens in tokens.</p></section>"]
    if detail.breakdown:
        out += ["<section><h2>Server breakdown</h2>",
                _table([h.lower() for h in _BREAKDOWN_HEADER], _breakdown_cells(detail), right={1, 2},
                       css="breakdown"), "</section>"]
    if report.sweep:
        out += ["<section><h2>Sweep</h2>", _sweep_table(report.sweep), "</section>"]
    return "\n".join(out)


def _sweep_table(rows: list[SweepRow]) -> str:
    from ollama_ops.render.report import _num

    cells = [[f"#{r.run_id}", r.load, r.status, _num(r.request_rate), _num(r.output_throughput),
              _num(r.ttft_p50, "s"), _num(r.e2el_p50, "s"),
              "-" if r.slo_attainment is None else f"{r.slo_attainment:.0%}",
              ("knee" if r.knee else "") + (" · meets SLO" if r.meets_slo else "")] for r in rows]
    return _table(["run", "load", "status", "req/s", "out tok/s", "TTFT p50", "E2EL p50", "SLO met", "note"], cells,
                  right={3, 4, 5, 6, 7}, css="sweep", row_class=["knee" if r.knee else "" for r in rows])


def _compare_section(report: HtmlReport) -> str:
    from ollama_ops.render.report import _metric_cells, _side, _summary_line

    data = report.comparison
    assert data is not None
    head = "Performance regressed" if data.regressed else "No performance regression"
    rows = [_metric_cells(m) for m in data.metrics]
    return "\n".join([
        f'<section><h2 class="{"bad" if data.regressed else "good"}">{_e(head)}</h2>',
        f"<ul><li>{_e(_side('base', data.base))}</li><li>{_e(_side('candidate', data.candidate))}</li></ul>",
        _table(["metric", "base", "candidate", "change [95% CI]", "verdict"], rows, right={1, 2, 3}, css="compare",
               row_class=["v-" + m.verdict.replace(" ", "-").replace("/", "") for m in data.metrics]),
        f'<p class="note">* gated · threshold {data.threshold_pct:g}% · {data.confidence:.0%} bootstrap interval '
        f"over requests ({data.n_boot} resamples) · {_e(_summary_line(data))}</p></section>"])


def _number(value: Any) -> Any:
    """JSON-ready value: floats to 6 significant digits (the page is read, not re-analysed), NaN as null."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(f"{value:.6g}")
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def _chart_spec(chart: Chart) -> dict[str, Any]:
    return {"id": chart.id, "title": chart.title, "xLabel": chart.x_label, "yLabel": chart.y_label,
            "x": _number(chart.x), "facets": chart.facets, "xTicks": chart.x_ticks,
            "series": [{"label": s.label, "y": _number(s.y), "x": _number(s.x), "style": s.style, "role": s.role,
                        "legend": _number(s.legend)} for s in chart.series]}


def _charts_section(report: HtmlReport) -> str:
    if not report.charts:
        return ""
    figures = []
    for chart in report.charts:
        size = "half" if chart.id in HALF_WIDTH else "wide"
        figures.append(f'<figure class="chart {size}" id="chart-{_e(chart.id)}">'
                       f'<figcaption>{_e(chart.title)}</figcaption><div class="plot" data-chart="{_e(chart.id)}"></div>'
                       f'<p class="note">{_e(chart.note)}</p></figure>')
    return ('<section><h2>Charts</h2><p class="nojs">The charts need JavaScript; every figure is in the tables '
            'above.</p><div class="charts">' + "".join(figures) + "</div></section>")


def _json_script(data: Any) -> str:
    # inside <script>, "</" could close the element; JSON allows "<\/" for it
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def render_page(report: HtmlReport) -> str:
    """The whole page as one string."""
    body = _run_section(report) if report.detail is not None else _compare_section(report)
    warnings = "".join(f'<p class="warning">warning: {_e(w)}</p>' for w in report.warnings)
    generated = datetime.fromtimestamp(report.generated_at).strftime("%Y-%m-%d %H:%M")
    specs = _json_script([_chart_spec(c) for c in report.charts])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="sollama {_e(report.sollama_version)}">
<title>{_e(report.title)}</title>
<style>{_asset("vendor/uPlot.min.css")}</style>
<style>{_asset("report.css")}</style>
</head>
<body>
<header><h1>{_e(report.title)}</h1>
<p class="note">written by sollama {_e(report.sollama_version)} on {_e(generated)} · charts: uPlot {UPLOT_VERSION}
(MIT licence)</p></header>
<main>
{warnings}
{body}
{_charts_section(report)}
</main>
<script type="application/json" id="sollama-charts">{specs}</script>
<script>{_asset("vendor/uPlot.iife.min.js")}</script>
<script>{_asset("charts.js")}</script>
</body>
</html>
"""
