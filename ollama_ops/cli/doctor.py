"""`sollama doctor`: check the machine and the setup, one line and one fix per check."""

from __future__ import annotations

from typing import Annotated

import typer

from ollama_ops.cli.context import JsonOption, use


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(ctx: typer.Context, json: Annotated[bool, JsonOption] = False) -> None:
    """Check the binary and its version, the port, HOME, the models dir and its free space, RAM and swap, GPUs,
    the config, a stale pid file and exposure beyond loopback. Exit 1 when any check fails.

    Example: [bold]sollama doctor --json | jq '.checks[] | select(.status != "pass")'[/bold]
    """
    from ollama_ops.errors import SollamaError
    from ollama_ops.render.doctor import render_doctor
    from ollama_ops.services.doctor import run_doctor

    obj = use(ctx, json=json)
    report = run_doctor(obj.config_path, obj.host)
    obj.emit(report, render_doctor)
    if report.failed:
        failed = ", ".join(c.name for c in report.checks if c.status == "fail")
        raise SollamaError(f"doctor: {report.failed} check{'s' if report.failed > 1 else ''} failed ({failed})")
