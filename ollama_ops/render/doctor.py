"""View of `sollama doctor`: one line per check, with its fix."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from ollama_ops.services.doctor import DoctorReport

_MARKS = {"pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "bold red")}


def render_doctor(console: Console, report: DoctorReport) -> None:
    width = max((len(c.name) for c in report.checks), default=0)
    for check in report.checks:
        mark, style = _MARKS.get(check.status, ("?", ""))
        line = Text(f"{mark} ", style=style)
        line.append(f"{check.status:<4} ", style=style)
        line.append(f"{check.name:<{width}}  ", style="bold")
        line.append(check.detail)
        console.print(line, soft_wrap=True)
        if check.fix:
            console.print(Text(f"       {' ' * width}  fix: {check.fix}", style="dim"), soft_wrap=True)
    console.print(Text(f"\n{report.passed} passed, {report.warned} warnings, {report.failed} failed"))
