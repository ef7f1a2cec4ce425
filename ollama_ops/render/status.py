"""View of `sollama status`: one block for the server, its process, loaded models, memory, disk and log errors."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ollama_ops.core.units import format_bytes, format_seconds
from ollama_ops.services.status import StatusReport

_STATE_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "unreachable": "bold red"}


def _row(table: Table, label: str, value: str | Text) -> None:
    table.add_row(Text(label, style="bold"), value if isinstance(value, Text) else Text(value))


def status_view(report: StatusReport) -> RenderableType:
    """The whole report as one renderable (printed once, or refreshed by `--watch`)."""
    head = Text(report.state, style=_STATE_STYLE.get(report.state, "bold"))
    head.append(f"  {report.address}", style="")
    if report.version is not None:
        head.append(f"  Ollama {report.version}")
    if report.latency_s is not None:
        head.append(f"  /api/version {format_seconds(report.latency_s)}")
    parts: list[RenderableType] = [head]
    if report.error:
        parts.append(Text(report.error, style="red"))
    facts = Table(box=None, show_header=False, pad_edge=False)
    facts.add_column()
    facts.add_column()
    p = report.process
    if p is not None:
        _row(facts, "process", f"{p.name} pid {p.pid}, up {format_seconds(p.uptime_s)}, RSS {format_bytes(p.rss)}, "
                               f"CPU {p.cpu_percent:.0f}% ({p.children} runner{'s' if p.children != 1 else ''}, "
                               f"{format_bytes(p.child_rss)})")
        _row(facts, "started by", p.started_by + (f" at {p.started_at}" if p.started_at else ""))
    elif report.local and report.reachable:
        _row(facts, "process", "not identified (another user's process?)")
    if report.installed is not None:
        n = report.installed.count
        _row(facts, "installed", f"{n} model{'' if n == 1 else 's'}, {format_bytes(report.installed.total_size)}")
    if report.memory is not None:
        m = report.memory
        _row(facts, "memory", f"{format_bytes(m.used)} loaded of a {format_bytes(m.budget)} budget "
                              f"(RAM {format_bytes(m.available_ram)} available of {format_bytes(m.total_ram)})")
    if report.disk is not None:
        _row(facts, "models dir", f"{report.disk.path}: {format_bytes(report.disk.free)} free")
    if report.deep is not None:
        d = report.deep
        verdict = "ok" if d.ok else "skipped" if d.ok is None else "FAILED"
        detail = f"{verdict} ({d.model}, {format_seconds(d.latency_s)})" if d.ok else f"{verdict}: {d.error}"
        _row(facts, "deep probe", Text(detail, style="" if d.ok or d.ok is None else "red"))
    for i, r in enumerate(report.restarts):
        what = {"restarted": f"restarted (pid {r.pid})", "restart-failed": "restart FAILED",
                "give-up": "GAVE UP"}.get(r.kind, r.kind)
        _row(facts, "watchdog" if i == 0 else "", Text(f"{r.at} {what}: {r.reason}",
                                                       style="red" if r.kind != "restarted" else ""))
    g = report.gateway
    if g is not None:
        if not g.running:
            line = Text(f"{g.address} not running ({g.error})"
                        + (f", its process up {format_seconds(g.uptime_s)}" if g.managed and g.uptime_s else ""),
                        style="yellow")
        else:
            line = Text(f"{g.address} → {g.upstream}, up {format_seconds(g.uptime_s or 0.0)}"
                        + (", DRAINING" if g.draining else ""))
            if g.in_flight is not None:
                line.append(f"; {g.in_flight}/{g.slots} in flight, {g.queue_depth} queued")
                if g.view == "admin" and g.queue_depth:
                    line.append(f" (oldest {format_seconds(g.oldest_wait_s or 0.0)})")
                elif g.view == "key":
                    line.append(" (yours)")
            elif g.error:
                line.append(f"; {g.error}", style="dim")
        if g.managed:
            line.append(f"; started by sollama (pid {g.pid})")
        line.append(f"; {g.keys} key{'' if g.keys == 1 else 's'}"
                    + (f" ({g.keys_total - g.keys} revoked/expired)" if g.keys_total > g.keys else ""))
        _row(facts, "gateway", line)
    if facts.row_count:
        parts.append(facts)
    if report.loaded:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column, justify in (("LOADED", "left"), ("SIZE", "right"), ("VRAM", "right"), ("CONTEXT", "right"),
                                ("EXPIRES IN", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for lm in report.loaded:
            expires = "never" if lm.expires_in_s is None else format_seconds(lm.expires_in_s)
            table.add_row(Text(lm.name), format_bytes(lm.size), f"{lm.vram_share:.0%}",
                          str(lm.context_length or "-"), expires)
        parts.append(table)
    elif report.reachable:
        parts.append(Text("no model loaded", style="dim"))
    if report.log.errors:
        parts.append(Text("last errors in the daemon log:", style="bold"))
        parts += [Text(f"  {line}", style="dim") for line in report.log.errors]
    return Group(*parts)


def render_status(console: Console, report: StatusReport) -> None:
    console.print(status_view(report), soft_wrap=True)
