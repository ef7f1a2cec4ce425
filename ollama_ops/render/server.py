"""Views of the daemon's lifecycle: start/stop summaries, dry-run plans, logs, cleanup plans and reports."""

from __future__ import annotations

import shlex
from typing import Any

from rich.console import Console
from rich.text import Text

from ollama_ops.core.units import format_bytes, format_seconds
from ollama_ops.render.console import display_info, display_success, display_warning


def render_notes(console: Console, notes: list[str], warnings: list[str] | None = None) -> None:
    """Notes and warnings that go with a result (to stderr)."""
    for message in warnings or []:
        display_warning(console, message)
    for message in notes:
        display_info(console, f"note: {message}")


def _field(console: Console, key: str, value: Any) -> None:
    console.print(Text(f"  {key:<9} {'-' if value in (None, '') else value}"), soft_wrap=True)


def render_start(console: Console, result: Any) -> None:
    if result.status == "dry-run":
        render_dry_run(console, result)
        return
    if result.status == "already-running":
        display_success(console, f"already running at {result.address}; not starting a second one")
    else:
        display_success(console, f"ollama serve started at {result.address} in {format_seconds(result.waited_s)}")
    _field(console, "pid", result.pid)
    _field(console, "address", result.address)
    _field(console, "version", result.version)
    _field(console, "by", result.started_by)
    if result.started_at:
        _field(console, "since", result.started_at)
    _field(console, "log", result.log)
    if result.memory_budget is not None:
        _field(console, "memory", f"budget {format_bytes(result.memory_budget)}")
    if result.gateway is not None:
        _render_gateway_start(console, result.gateway)


def _render_gateway_start(console: Console, result: Any) -> None:
    if result.status == "already-running":
        display_success(console, f"a gateway already answers at {result.address}; not starting a second one")
    else:
        display_success(console, f"sollama serve (the gateway) started at {result.address} in "
                                 f"{format_seconds(result.waited_s)}")
    _field(console, "pid", result.pid)
    _field(console, "address", result.address)
    _field(console, "by", result.started_by)
    _field(console, "log", result.log)


def render_dry_run(console: Console, result: Any) -> None:
    console.print(Text("would run: ", style="bold").append(shlex.join(result.command), style=""), soft_wrap=True)
    console.print(Text("environment set by sollama (on top of the inherited one):"), soft_wrap=True)
    for key, value in result.env.items():
        source = result.env_sources.get(key, "")
        console.print(Text(f"  {key}={value}").append(f"    # {source}" if source else "", style="dim"),
                      soft_wrap=True)
    console.print(Text(f"log: {result.log}"), soft_wrap=True)
    if result.memory_budget is not None:
        console.print(Text(f"memory budget: {format_bytes(result.memory_budget)}"), soft_wrap=True)


def render_log_tail(console: Console, lines: list[str], title: str = "last log lines") -> None:
    """The daemon's last log lines after a failed start (to stderr)."""
    if not lines:
        display_info(console, f"{title}: (the log is empty)")
        return
    display_info(console, f"--- {title} ---")
    for line in lines:
        console.print(Text(line), soft_wrap=True)
    display_info(console, "---")


_HOW = {"sigterm": "SIGTERM", "sigkill": "SIGKILL after the timeout", "exited": "it had exited"}


def render_stop(console: Console, result: Any) -> None:
    gateway = getattr(result, "gateway", None)
    if gateway is not None and gateway.status == "stopped":
        display_success(console, f"stopped sollama serve, the gateway (pid {gateway.pid}) in "
                                 f"{format_seconds(gateway.waited_s)} ({_HOW.get(gateway.how, gateway.how)})")
    elif gateway is not None and gateway.status == "stale":
        display_info(console, f"stale gateway pid file: {gateway.stale_reason}")
    if result.status == "stopped":
        display_success(console, f"stopped ollama serve (pid {result.pid}) in {format_seconds(result.waited_s)} "
                                 f"({_HOW.get(result.how, result.how)})")
    elif result.status == "stale":
        display_info(console, f"stale pid file: {result.stale_reason}")
    else:
        display_info(console, "no daemon started by sollama is running; nothing to stop")


def render_restart(console: Console, result: Any) -> None:
    render_stop(console, result.stop)
    render_start(console, result.start)


def render_log_view(console: Console, view: Any) -> None:
    for line in view.lines:
        render_log_line(console, line)


def render_log_line(console: Console, line: str) -> None:
    console.print(Text(line), soft_wrap=True)


def render_cleanup_plan(console: Console, plan: Any) -> None:
    """One line per step (targets below it, unwrapped so paths stay whole)."""
    title = "cleanup plan (dry run: nothing will be done)" if plan.dry_run else "cleanup plan"
    console.print(Text(title, style="bold"), soft_wrap=True)
    for step in plan.steps:
        line = Text(f"  {step.name:<14} ")
        if step.skipped:
            line.append(f"nothing: {step.skipped}", style="dim")
            console.print(line, soft_wrap=True)
            continue
        line.append(step.action)
        line.append(f" (frees {format_bytes(step.bytes)})" if step.bytes else f" ({step.count} item(s))")
        console.print(line, soft_wrap=True)
        for target in step.targets:
            console.print(Text(f"  {'':<14}   {target}"), soft_wrap=True)
    if not plan.todo:
        display_info(console, "nothing to clean up")


def render_cleanup_report(console: Console, report: Any) -> None:
    for outcome in report.outcomes:
        if outcome.ok:
            display_success(console, f"{outcome.name}: {outcome.freed}")
        else:
            console.print(Text(f"✗ {outcome.name}: ", style="red").append(outcome.error or outcome.freed, style=""),
                          soft_wrap=True)


def render_cleanup(console: Console, result: Any) -> None:
    render_cleanup_plan(console, result.plan)
    if result.report is not None:
        render_cleanup_report(console, result.report)


def render_unit(console: Console, text: str) -> None:
    console.print(Text(text), soft_wrap=True, end="")
