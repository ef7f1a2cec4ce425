"""View of `sollama status --fleet`: one table of upstream hosts, one of gateway replicas."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ollama_ops.core.units import format_bytes, format_seconds
from ollama_ops.services.fleet_status import FleetModel, FleetReport


def fleet_view(report: FleetReport) -> Group:
    n = len(report.hosts)
    style = "bold green" if report.hosts_up == n else "bold yellow" if report.hosts_up else "bold red"
    head = Text(f"{report.hosts_up}/{n} host{'s' if n != 1 else ''} up", style=style)
    head.append(f"  state {report.state}", style="")
    if report.queue_depth is not None:
        head.append(f"  queue {report.queue_depth}")
    parts: list = [head]
    hosts = Table(box=None, pad_edge=False, header_style="bold")
    for column, justify in (("HOST", "left"), ("HEALTH", "left"), ("VERSION", "left"), ("IN FLIGHT", "right"),
                            ("FREE MEM", "right"), ("LOADED", "left"), ("SIZE", "right"), ("EXPIRES IN", "right")):
        hosts.add_column(column, justify=justify)  # type: ignore[arg-type]
    for h in report.hosts:
        flight = f"{'-' if h.in_flight is None else h.in_flight}/{h.slots}"
        free = format_bytes(h.memory.free) if h.memory is not None else "-"  # only where sollama manages it
        health = Text("up", style="green") if h.up else Text("down", style="red")
        first = True
        models: list[FleetModel | None] = [*h.loaded] if h.loaded else [None]  # a host without models: one row
        for m in models:
            name = size = expires = ""
            if m is not None:
                name, size = m.name, format_bytes(m.size)
                expires = "never" if m.expires_in_s is None else format_seconds(max(0.0, m.expires_in_s))
            elif h.up:
                name = "-"
            hosts.add_row(Text(h.url) if first else Text(""), health if first else Text(""),
                          Text((h.version or "-") if first else ""), flight if first else "", free if first else "",
                          Text(name), size, expires)
            first = False
        if h.error:
            hosts.add_row(Text(""), Text(""), Text(h.error, style="red"), "", "", Text(""), "", "")
    parts.append(hosts)
    if report.state_error:
        parts.append(Text(f"shared state unreachable: {report.state_error}", style="red"))
    if report.replicas is not None:
        if report.replicas:
            reps = Table(box=None, pad_edge=False, header_style="bold")
            for column, justify in (("REPLICA", "left"), ("PID", "right"), ("IN FLIGHT", "right"),
                                    ("QUEUED", "right"), ("SEEN", "right")):
                reps.add_column(column, justify=justify)  # type: ignore[arg-type]
            for r in report.replicas:
                reps.add_row(Text(r.address), str(r.pid), str(r.in_flight), str(r.queued),
                             f"{format_seconds(r.seen_s_ago)} ago")
            parts.append(reps)
        else:
            parts.append(Text("no gateway replica is running", style="dim"))
    return Group(*parts)


def render_fleet(console: Console, report: FleetReport) -> None:
    console.print(fleet_view(report), soft_wrap=True)
