"""Views of `sollama report`: Rich tables for the terminal, GitHub-flavoured Markdown for CI job summaries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ollama_ops.core.bench.apis import NO_BREAKDOWN, is_openai
from ollama_ops.core.stats import Change
from ollama_ops.core.units import format_seconds
from ollama_ops.render.console import display_info, display_warning
from ollama_ops.services.compare import Comparison, MetricComparison, RunSet
from ollama_ops.services.report import RunDetail, RunFigures, RunList, UsageSummary

VERDICT_STYLE = {"regressed": "bold red", "improved": "green", "no change": "", "n/a": "dim"}
VERDICT_MARK = {"regressed": "❌ regressed", "improved": "✅ improved", "no change": "no change", "n/a": "n/a"}


# -- formatting ------------------------------------------------------------------------------------------------

def _when(epoch: float, short: bool = False) -> str:
    return datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M")


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "s":
        return format_seconds(value)
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def _pct(value: float) -> str:
    return f"{value:+.1f}%"


def _change(change: Change | None) -> str:
    if change is None:
        return "-"
    return f"{_pct(change.point_pct)} [{_pct(change.lo_pct)}, {_pct(change.hi_pct)}]"


def _md(text: Any) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def _table(*columns: tuple[str, str]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for title, justify in columns:
        table.add_column(title, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    return table


# -- run list --------------------------------------------------------------------------------------------------

_LIST_HEADER = ("ID", "LABEL", "STARTED", "STATUS", "MODEL", "LOAD", "OK/FAIL", "REQ/S", "OUT TOK/S", "TTFT P50",
                "E2EL P50")


def _list_cells(data: RunList) -> list[list[str]]:
    cells = []
    for run in data.runs:
        f = run.figures
        cells.append([str(run.id), run.label or "-", _when(run.started_at, short=True), run.status, run.model, run.load,
                      f"{f.ok}/{f.failed}", _num(f.request_rate), _num(f.output_throughput),
                      _num(f.ttft_p50, "s"), _num(f.e2el_p50, "s")])
    return cells


def render_run_list(console: Console, data: RunList) -> None:
    if not data.runs:
        display_info(console, "no bench runs stored yet (run `sollama bench -m MODEL`)")
        return
    table = _table(*((h, "right" if i in (0, 6, 7, 8, 9, 10) else "left") for i, h in enumerate(_LIST_HEADER)))
    for row in _list_cells(data):
        table.add_row(*(Text(c) for c in row))
    console.print(table)


def run_list_markdown(data: RunList) -> str:
    if not data.runs:
        return "_No bench runs stored yet._\n"
    return "\n".join(_md_table(_LIST_HEADER, _list_cells(data), right=(0, 6, 7, 8, 9, 10))) + "\n"


# -- one run ---------------------------------------------------------------------------------------------------

def _detail_lines(data: RunDetail) -> list[tuple[str, str]]:
    run, f = data.run, data.figures
    lines = [("model", run.model), ("label", run.label or "-"), ("status", run.status),
             ("started", _when(run.started_at)), ("host", run.host or "-"),
             ("ollama", run.ollama_version or "-"), ("api", run.api), ("load", data.load),
             ("requests", f"{f.ok} ok, {f.failed} failed" + (
                 " (" + ", ".join(f"{k}: {v}" for k, v in sorted(f.errors.items())) + ")" if f.errors else "")),
             ("duration", _num(f.duration_s, "s")), ("request/s", _num(f.request_rate)),
             ("output tok/s", _num(f.output_throughput)),
             ("clock", (run.summary or {}).get("arrival_clock") or "-")]
    if data.excluded:
        lines.insert(8, ("excluded", ", ".join(f"{n} {_PHASE_WORDS.get(p, p)}" for p, n in data.excluded.items())
                         + " (stored, not in the figures)"))
    return lines


_PHASE_WORDS = {"warmup": "warm-up", "cooldown": "cool-down"}


_DIST_HEADER = ("METRIC", "N", "MEAN", "P50", "P90", "P95", "P99", "MAX")


def _dist_cells(data: RunDetail) -> list[list[str]]:
    cells = []
    for name, dist in data.metrics.items():
        unit = "" if name == "output_tokens" else "s"
        if dist is None:
            cells.append([name, "0", "-", "-", "-", "-", "-", "-"])
            continue
        cells.append([name, str(dist.n), *(_num(v, unit) for v in (dist.mean, dist.p50, dist.p90, dist.p95,
                                                                       dist.p99, dist.max))])
    return cells


_BREAKDOWN_HEADER = ("SERVER BREAKDOWN (MEDIAN)", "TIME", "SHARE OF E2EL")


def _breakdown_cells(data: RunDetail) -> list[list[str]]:
    return [[p.part, _num(p.median_s, "s"), f"{p.median_share:.1%}"] for p in data.breakdown]


def render_run_detail(console: Console, data: RunDetail) -> None:
    info = Table(box=None, show_header=False, pad_edge=False, title=Text(f"bench run {data.run.id}", style="bold"),
                 title_justify="left")
    info.add_column(style="bold")
    info.add_column()
    for key, value in _detail_lines(data):
        info.add_row(key, Text(value))
    console.print(info)
    console.print()
    table = _table(*((h, "left" if i == 0 else "right") for i, h in enumerate(_DIST_HEADER)))
    for row in _dist_cells(data):
        table.add_row(*(Text(c) for c in row))
    console.print(table)
    if data.breakdown:
        console.print()
        parts = _table(*((h, "left" if i == 0 else "right") for i, h in enumerate(_BREAKDOWN_HEADER)))
        for row in _breakdown_cells(data):
            parts.add_row(*(Text(c) for c in row))
        console.print(parts)
    elif is_openai(data.run.api):
        console.print(Text(f"server breakdown: {NO_BREAKDOWN}"))


def run_detail_markdown(data: RunDetail) -> str:
    lines = [f"### Bench run {data.run.id}", ""]
    lines += _md_table(("", ""), [(k, v) for k, v in _detail_lines(data)])
    lines += [""] + _md_table(_DIST_HEADER, _dist_cells(data), right=range(1, 8))
    if data.breakdown:
        lines += [""] + _md_table(_BREAKDOWN_HEADER, _breakdown_cells(data), right=(1, 2))
    elif is_openai(data.run.api):
        lines += ["", f"Server breakdown: {NO_BREAKDOWN}."]
    return "\n".join(lines) + "\n"


# -- comparison ------------------------------------------------------------------------------------------------

_CMP_HEADER = ("METRIC", "BASE", "CANDIDATE", "CHANGE [95% CI]", "VERDICT")


def _side(label: str, side: RunSet) -> str:
    runs = ", ".join(f"#{i}" for i in side.run_ids)
    name = f" ({side.label})" if side.label else ""
    f: RunFigures = side.figures
    return f"{label}: run {runs}{name} · {side.model} · {side.load} · {f.ok} ok, {f.failed} failed"


def _metric_cells(m: MetricComparison) -> list[str]:
    title = m.title + (" *" if m.gated else "")
    return [title, _num(m.base, m.unit), _num(m.candidate, m.unit), _change(m.change), m.verdict]


def _summary_line(data: Comparison) -> str:
    if data.regressed:
        return f"regressed (gated): {', '.join(data.regressed)}"
    if data.undecided:
        return "cannot decide whether a gated metric regressed"
    return "no gated metric regressed"


def render_comparison(console: Console, data: Comparison) -> None:
    console.print(Text(_side("base     ", data.base)))
    console.print(Text(_side("candidate", data.candidate)))
    console.print()
    table = _table(*((h, "left" if i in (0, 4) else "right") for i, h in enumerate(_CMP_HEADER)))
    for m in data.metrics:
        cells = _metric_cells(m)
        table.add_row(*(Text(c) for c in cells[:-1]), Text(cells[-1], style=VERDICT_STYLE.get(m.verdict, "")))
    console.print(table)
    console.print(Text(f"* gated · threshold {data.threshold_pct:g}% · {data.confidence:.0%} bootstrap CI over "
                       f"requests ({data.n_boot} resamples) · {_summary_line(data)}", style="dim"))
    for note in [*data.undecided, *data.warnings]:
        display_warning(console, note)


def comparison_markdown(data: Comparison) -> str:
    head = ("❌ Performance regressed" if data.regressed else "⚠️ Cannot decide whether performance regressed"
            if data.undecided else "✅ No performance regression")
    lines = [f"### {head}", "", f"- {_side('Base', data.base)}", f"- {_side('Candidate', data.candidate)}", ""]
    rows = []
    for m in data.metrics:
        cells = _metric_cells(m)
        rows.append([*cells[:-1], VERDICT_MARK.get(m.verdict, m.verdict)])
    lines += _md_table(_CMP_HEADER, rows, right=(1, 2, 3))
    lines += ["", f"\\* gated metric · threshold {data.threshold_pct:g}% · {data.confidence:.0%} bootstrap "
                  f"confidence interval over requests ({data.n_boot} resamples) · {_summary_line(data)}"]
    lines += [f"> ⚠️ {_md(note)}" for note in [*data.undecided, *data.warnings]]
    return "\n".join(lines) + "\n"


# -- usage -----------------------------------------------------------------------------------------------------

_USAGE_HEADER = ("MODEL", "REQUESTS", "OK", "ERRORS", "PROMPT TOK", "EVAL TOK", "MEDIAN LATENCY", "MEDIAN TOK/S")


def _usage_header(data: UsageSummary) -> tuple[str, ...]:
    if data.by == "model":
        return _USAGE_HEADER
    return (data.by.upper(), "MODELS", *_USAGE_HEADER[1:])


def _usage_cells(data: UsageSummary) -> list[list[str]]:
    if data.by != "model":
        return [[m.group, m.model, str(m.requests), str(m.ok), str(m.errors), str(m.prompt_tokens),
                 str(m.eval_tokens), _num(m.median_total_s, "s"), _num(m.median_eval_rate)] for m in data.models]
    return [[m.model, str(m.requests), str(m.ok), str(m.errors), str(m.prompt_tokens), str(m.eval_tokens),
             _num(m.median_total_s, "s"), _num(m.median_eval_rate)] for m in data.models]


def render_usage(console: Console, data: UsageSummary) -> None:
    if not data.models:
        display_info(console, "no usage recorded" + (" in this window" if data.since else ""))
        return
    header = _usage_header(data)
    table = _table(*((h, "left" if i < len(header) - 7 else "right") for i, h in enumerate(header)))
    for row in _usage_cells(data):
        table.add_row(*(Text(c) for c in row))
    console.print(table)
    if data.since:
        console.print(Text(f"since {_when(data.since)}", style="dim"))


def usage_markdown(data: UsageSummary) -> str:
    if not data.models:
        return "_No usage recorded._\n"
    header = _usage_header(data)
    first = len(header) - 7
    return "\n".join(_md_table(header, _usage_cells(data), right=range(first, first + 7))) + "\n"
