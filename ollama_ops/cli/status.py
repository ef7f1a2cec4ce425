"""`sollama status`: probe the daemon (shallow, `--deep`), wait for it (`--wait`), or follow it (`--watch`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ollama_ops.cli.context import ApiKeyOption, AppContext, JsonOption, use

if TYPE_CHECKING:
    from ollama_ops.services.status import StatusReport


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def _exit_for(report: StatusReport) -> None:
    """Unreachable → exit 4, degraded → exit 7 (one line on stderr), healthy → 0."""
    from ollama_ops.errors import ServerUnreachable, Unhealthy

    if not report.reachable:
        alive = ""
        if report.process is not None and report.process.holds_port:
            alive = f"; {report.process.name} pid {report.process.pid} holds the port but does not answer"
        elif report.process is not None:
            alive = (f"; the daemon sollama started ({report.process.name} pid {report.process.pid}) runs but does "
                     f"not listen on the port")
        raise ServerUnreachable(f"{report.error}{alive}",
                                hint="start it with `sollama start` or check --host")
    if not report.healthy:
        raise Unhealthy(f"Ollama at {report.address} is degraded: {report.error}")


def _watch(obj: AppContext, fetch, interval: float, count: int | None) -> None:  # type: ignore[no-untyped-def]
    """Refresh in place on a terminal (Rich Live); plain repeated output otherwise, one JSON line with --json."""
    import json as jsonlib
    import time

    from rich.live import Live
    from rich.text import Text

    from ollama_ops.render.console import to_jsonable
    from ollama_ops.render.safe import escape_json_text
    from ollama_ops.render.status import render_status, status_view

    live = None if obj.json or not obj.out.is_terminal else Live(console=obj.out, auto_refresh=False)
    report, n = None, 0
    try:
        if live is not None:
            live.start()
        while count is None or n < count:
            if n:
                time.sleep(interval)
            report, n = fetch(), n + 1
            if obj.json:
                obj.out.file.write(escape_json_text(jsonlib.dumps(to_jsonable(report), ensure_ascii=False)) + "\n")
                obj.out.file.flush()
            elif live is not None:
                live.update(status_view(report), refresh=True)
            else:
                obj.out.print(Text(f"--- {report.checked_at}", style="dim"))
                render_status(obj.out, report)
    except KeyboardInterrupt:
        return  # stopping a watch is the normal way out
    finally:
        if live is not None:
            live.stop()
    if report is not None:
        _exit_for(report)


def _fleet(obj: AppContext) -> None:
    """`--fleet`: exit 0 when every host is up, 7 when some are down, 4 when none answers."""
    from ollama_ops.errors import ServerUnreachable, Unhealthy
    from ollama_ops.services.fleet_status import fleet_status

    def render(console, report):  # type: ignore[no-untyped-def]
        from ollama_ops.render.fleet import render_fleet

        render_fleet(console, report)

    report = fleet_status(obj.settings)
    obj.emit(report, render)
    down = [h.url for h in report.hosts if not h.up]
    if len(down) == len(report.hosts):
        raise ServerUnreachable(f"no upstream host answers ({', '.join(down)})")
    if down:
        raise Unhealthy(f"{len(down)} of {len(report.hosts)} upstream hosts down: {', '.join(down)}")


def status(
    ctx: typer.Context,
    deep: Annotated[bool, typer.Option("--deep", help="Also generate one token (catches a hung runner).")] = False,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model for --deep (default: a loaded one, "
                                                                    "else the first installed).")] = None,
    deep_timeout: Annotated[float, typer.Option("--deep-timeout", metavar="SECONDS",
                                                help="Limit of the --deep generation.")] = 30.0,
    wait: Annotated[float | None, typer.Option("--wait", metavar="SECONDS",
                                               help="Wait up to SECONDS for the server to answer (for CI).")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", metavar="SECONDS",
                                            help="Refresh period of --watch.")] = 2.0,
    count: Annotated[int | None, typer.Option("--count", help="Stop --watch after N refreshes.")] = None,
    fleet: Annotated[bool, typer.Option("--fleet", help="The whole service: every gateway.upstreams host (health, "
                                                        "version, loaded models, in-flight/slots) and every "
                                                        "gateway replica (with gateway.state).")] = False,
    api_key: Annotated[str | None, ApiKeyOption] = None,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Address, latency, version, process (pid, uptime, RSS, CPU), loaded and installed models, memory budget vs
    used, free disk, last log errors. Exit 0 healthy, 4 unreachable, 7 degraded.

    Example: [bold]sollama status --wait 30 --deep --json | jq .state[/bold]
    """
    from ollama_ops.services.status import status as get_status

    def render_status(console, report):  # type: ignore[no-untyped-def]  # imported only when drawn: --json skips it
        from ollama_ops.render.status import render_status as draw

        draw(console, report)

    import os

    obj = use(ctx, json=json, api_key=api_key)
    settings = obj.settings
    key = obj.api_key or os.environ.get("SOLLAMA_API_KEY") or None
    if fleet:
        return _fleet(obj)

    def fetch() -> StatusReport:
        return get_status(settings, deep=deep, model=model, deep_timeout=deep_timeout, api_key=key)

    if watch:
        if wait is not None:
            get_status(settings, wait=wait)
        _watch(obj, fetch, interval, count)
        return
    report = get_status(settings, deep=deep, model=model, deep_timeout=deep_timeout, wait=wait, api_key=key)
    if report.reachable or obj.json:
        obj.emit(report, render_status)
    _exit_for(report)
