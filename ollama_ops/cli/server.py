"""`sollama start | stop | restart | logs | cleanup | service`: the local daemon's lifecycle."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ollama_ops.cli.context import AppContext, JsonOption, use
from ollama_ops.errors import UsageError

if TYPE_CHECKING:
    from ollama_ops.services.launch import LaunchPlan

service_app = typer.Typer(help="Run sollama's daemon under a service manager (systemd).", no_args_is_help=True)

HostOption = typer.Option("--host", "-H", metavar="ADDR", help="Address to serve on (same as the global --host).")
TimeoutOption = typer.Option("--timeout", metavar="SECONDS",
                             help="Seconds to wait for readiness (default server.start_timeout); exit 5 past it.")
EnvOption = typer.Option("--env", "-e", metavar="KEY=VAL", help="Extra environment for ollama serve (repeatable).")
BinaryOption = typer.Option("--binary", metavar="PATH", help="The ollama executable (default: SOLLAMA_OLLAMA_BIN, "
                                                              "config, PATH, then the tools cache).")
EnforceOption = typer.Option("--enforce/--no-enforce", help="Run under a hard cgroup memory cap (systemd-run) "
                                                            "where available (default memory.enforce).")
StopTimeoutOption = typer.Option("--timeout", metavar="SECONDS",
                                 help="Seconds to wait after SIGTERM before SIGKILL (the gateway gets at least "
                                      "gateway.drain_timeout + 5).")
GatewayOption = typer.Option("--gateway", help="Also the API gateway (`sollama serve`) in front of the daemon, as a "
                                               "second managed process.")
ListenOption = typer.Option("--listen", "-l", metavar="HOST:PORT",
                            help="The gateway's address (with --gateway; default gateway.listen).")
WorkersOption = typer.Option("--workers", metavar="N",
                             help="The gateway's worker processes (with --gateway; default gateway.workers); above "
                                  "1 only with shared state (gateway.state: redis://…).")


def register(root: typer.Typer) -> None:
    root.command("start")(start)
    root.command("stop")(stop)
    root.command("restart")(restart)
    root.command("logs")(logs)
    root.command("cleanup")(cleanup)
    root.add_typer(service_app, name="service")


def _spinner(obj: AppContext) -> Any:
    def spinner(message: str) -> AbstractContextManager[Any]:
        return obj.err.status(message) if obj.err.is_terminal and not obj.json else nullcontext()

    return spinner


def _plan(obj: AppContext, binary: str | None, env: list[str] | None, enforce: bool | None) -> LaunchPlan:
    from ollama_ops.services.launch import plan_launch

    return plan_launch(obj.settings, binary=binary, env_pairs=env, enforce=enforce)


def _gateway_plan(obj: AppContext, gateway: bool, listen: str | None, workers: int | None = None) -> Any:
    """The gateway's plan with --gateway (None without); --listen or --workers alone is a usage error."""
    if not gateway:
        if listen is not None:
            raise UsageError("--listen is the gateway's address: it goes with --gateway")
        if workers is not None:
            raise UsageError("--workers is the gateway's: it goes with --gateway")
        return None
    from ollama_ops.services.gateway_lifecycle import plan_gateway

    return plan_gateway(obj.settings, listen=listen, config_path=obj.config_path, workers=workers)


def _start(obj: AppContext, plan: LaunchPlan, timeout: float | None, gateway: Any = None) -> Any:
    """Start (the daemon, then the gateway with a plan), showing the last log lines on stderr when one dies or
    times out."""
    from ollama_ops.render.server import render_log_tail
    from ollama_ops.services.gateway_lifecycle import start_with_gateway
    from ollama_ops.services.lifecycle import DaemonDiedAtStart, StartTimedOut

    try:
        return start_with_gateway(obj.settings, plan, gateway, timeout=timeout, spinner=_spinner(obj))
    except (DaemonDiedAtStart, StartTimedOut) as exc:
        render_log_tail(obj.err, exc.log_tail, f"last lines of {exc.log or plan.log}")
        raise


def start(
    ctx: typer.Context,
    host: Annotated[str | None, HostOption] = None,
    timeout: Annotated[float | None, TimeoutOption] = None,
    env: Annotated[list[str] | None, EnvOption] = None,
    binary: Annotated[str | None, BinaryOption] = None,
    enforce: Annotated[bool | None, EnforceOption] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the command and environment; start nothing.")]
    = False,
    foreground: Annotated[bool, typer.Option("--foreground", help="Run attached (systemd, containers): forward "
                                                                  "SIGINT/SIGTERM, exit with its code.")] = False,
    supervise: Annotated[bool, typer.Option("--supervise", help="Then stay in the foreground as its watchdog "
                                                                "(as `sollama watch`; exit 7 when it gives up).")]
    = False,
    gateway: Annotated[bool, GatewayOption] = False,
    listen: Annotated[str | None, ListenOption] = None,
    workers: Annotated[int | None, WorkersOption] = None,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Start the shared `ollama serve` detached, or report the one already running (exit 0).

    With --gateway, then the API gateway (`sollama serve`) in front of it, as a second managed process, ready
    when its /readyz answers. Exits 1 when the port is held by something else or the daemon (or gateway) dies at
    start (its last log lines are shown), and 5 when it is not ready within --timeout (it is stopped again).

    Example: [bold]sollama start --host 127.0.0.1:11434 -e OLLAMA_DEBUG=1[/bold] ·
    [bold]sollama start --gateway --listen 127.0.0.1:8000[/bold] ·
    [bold]sollama start --gateway --workers 4[/bold] (with gateway.state: redis://…)
    """
    from ollama_ops.render.server import render_notes, render_start
    from ollama_ops.services.lifecycle import dry_run as plan_only
    from ollama_ops.services.lifecycle import run_foreground

    obj = use(ctx, json=json, host=host)
    if supervise and (dry_run or foreground):
        raise UsageError("--supervise starts the daemon detached and watches it; it does not go with --dry-run or "
                         "--foreground")
    if gateway and (foreground or supervise or dry_run):
        raise UsageError("--gateway starts both detached; it does not go with --foreground, --supervise or --dry-run "
                         "(under systemd: `sollama service unit --gateway`)")
    gateway_plan = _gateway_plan(obj, gateway, listen, workers)
    plan = _plan(obj, binary, env, enforce)
    if dry_run:
        result = plan_only(plan)
    elif foreground:
        render_notes(obj.err, plan.notes, plan.warnings)
        raise typer.Exit(run_foreground(obj.settings, plan, echo=sys.stderr.buffer))
    else:
        result = _start(obj, plan, timeout, gateway_plan)
    render_notes(obj.err, result.notes + (result.gateway.notes if result.gateway else []), result.warnings)
    obj.emit(result, render_start)
    if supervise:
        from ollama_ops.render.watch import event_printer
        from ollama_ops.services.watch import Watchdog

        Watchdog(obj.settings, emit=event_printer(obj.err), launch=lambda: _plan(obj, binary, env, enforce)).run()


def stop(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", "-H", metavar="ADDR",
                                             help="Stop only the daemon at this address (same as the global "
                                                  "--host).")] = None,
    timeout: Annotated[float, StopTimeoutOption] = 10.0,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Stop the gateway and the daemon sollama started (SIGTERM, then SIGKILL after --timeout); only a process
    verified by pid, creation time and command line is signalled. The gateway goes first and gets at least
    gateway.drain_timeout to drain. A stale pid file is removed; nothing running exits 0. With --host (or
    OLLAMA_HOST, or a configured address) only the daemon at that address is stopped.

    Example: [bold]sollama stop --timeout 30[/bold]
    """
    from ollama_ops.render.server import render_notes, render_stop
    from ollama_ops.services.gateway_lifecycle import stop_both

    obj = use(ctx, json=json, host=host)
    result = stop_both(obj.settings, timeout=timeout)
    render_notes(obj.err, (result.gateway.notes if result.gateway else []) + result.notes)
    obj.emit(result, render_stop)


def restart(
    ctx: typer.Context,
    host: Annotated[str | None, HostOption] = None,
    timeout: Annotated[float, StopTimeoutOption] = 10.0,
    start_timeout: Annotated[float | None, typer.Option("--start-timeout", metavar="SECONDS",
                                                        help="Readiness wait (default server.start_timeout).")]
    = None,
    env: Annotated[list[str] | None, EnvOption] = None,
    binary: Annotated[str | None, BinaryOption] = None,
    enforce: Annotated[bool | None, EnforceOption] = None,
    gateway: Annotated[bool, typer.Option("--gateway", help="Start the gateway too, even when none ran.")] = False,
    listen: Annotated[str | None, ListenOption] = None,
    workers: Annotated[int | None, WorkersOption] = None,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Stop the daemon (as `stop`), then start it again with the same settings (as `start`).

    The gateway sollama started is stopped first and started again after the daemon, on the address and with the
    workers it had (with --gateway: also when none ran).

    With --host (or OLLAMA_HOST, or a configured address) only the daemon sollama started at that address is
    stopped; one it started elsewhere is left alone, and the start then refuses to run a second one.
    """
    from ollama_ops.render.server import render_log_tail, render_notes, render_restart
    from ollama_ops.services.gateway_lifecycle import restart_both, running_listen, running_workers
    from ollama_ops.services.lifecycle import DaemonDiedAtStart, StartTimedOut

    obj = use(ctx, json=json, host=host)
    was = running_listen()
    gateway_plan = _gateway_plan(obj, gateway or was is not None, listen or was,
                                 workers if workers is not None or was is None else running_workers())
    plan = _plan(obj, binary, env, enforce)
    try:
        result = restart_both(obj.settings, plan, gateway_plan, timeout=timeout, start_timeout=start_timeout,
                              spinner=_spinner(obj))
    except (DaemonDiedAtStart, StartTimedOut) as exc:
        render_log_tail(obj.err, exc.log_tail, f"last lines of {exc.log or plan.log}")
        raise
    gw_notes = (result.stop.gateway.notes if result.stop.gateway else []) + (
        result.start.gateway.notes if result.start.gateway else [])
    render_notes(obj.err, result.stop.notes + result.start.notes + gw_notes, result.start.warnings)
    obj.emit(result, render_restart)


def logs(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("--lines", "-n", metavar="N", help="How many last lines.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the daemon exits "
                                                                "or Ctrl-C.")] = False,
    errors: Annotated[bool, typer.Option("--errors", help="Only error lines.")] = False,
    gateway: Annotated[bool, typer.Option("--gateway", help="The gateway's access log (one JSON line per request) "
                                                            "instead of the daemon's.")] = False,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """The daemon's log (its stdout and stderr), across rotated files.

    Example: [bold]sollama logs -n 100 --errors[/bold] · [bold]sollama logs --gateway -f[/bold]
    """
    from ollama_ops.edges.process import log_path
    from ollama_ops.render.console import display_info
    from ollama_ops.render.server import render_log_line, render_log_view
    from ollama_ops.services.logs import daemon_alive, follow_log, read_log

    obj = use(ctx, json=json)
    if follow and obj.json:
        raise UsageError("--follow prints lines as they come; it cannot be combined with --json")
    if gateway:
        from ollama_ops.gateway.accesslog import log_path as gateway_log
        from ollama_ops.gateway.accesslog import log_paths as gateway_logs

        current = gateway_log()
        view = read_log(lines, errors_only=errors, files=gateway_logs(), current=current)
        if not view.exists and not follow:
            display_info(obj.err, f"no gateway access log yet ({view.path})")
        obj.emit(view, render_log_view)
        if follow:
            try:  # until Ctrl-C: the gateway runs in its own foreground process
                for line in follow_log(current, alive=lambda: True, errors_only=errors):
                    render_log_line(obj.out, line)
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
        return
    view = read_log(lines, errors_only=errors)
    if not view.exists and not follow:
        display_info(obj.err, f"no daemon log yet ({view.path})")
    obj.emit(view, render_log_view)
    if not follow:
        return
    if not daemon_alive():
        display_info(obj.err, "the daemon sollama started is not running; not following")
        return
    try:
        for line in follow_log(log_path(), alive=daemon_alive, errors_only=errors):
            render_log_line(obj.out, line)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def cleanup(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan only.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed when stdin is not a terminal).")]
    = False,
    stop_daemon: Annotated[bool, typer.Option("--stop", help="Also stop the gateway and the daemon sollama started "
                                                             "(the gateway first).")] = False,
    older_than: Annotated[str | None, typer.Option("--older-than", metavar="AGE",
                                                   help="Prune bench history older than AGE (30d, 2w, 12h).")]
    = None,
    orphans: Annotated[bool, typer.Option("--orphans/--no-orphans", help="Look for orphaned Ollama runner "
                                                                         "processes to terminate.")] = True,
    timeout: Annotated[float, StopTimeoutOption] = 10.0,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Free what the daemon left behind: unload models, optionally stop it, remove stale pid/lock files,
    rotate big logs, prune old bench history, and terminate orphaned runner processes. Shows the plan, asks,
    then does it.

    --stop also stops the gateway sollama started (`start --gateway`), before the daemon.

    Example: [bold]sollama cleanup --stop --older-than 30d --yes[/bold]
    """
    from ollama_ops.core.options import duration_seconds
    from ollama_ops.errors import SollamaError
    from ollama_ops.render.server import render_cleanup, render_cleanup_plan, render_cleanup_report
    from ollama_ops.services.cleanup import CleanupResult, plan_cleanup, run_cleanup

    obj = use(ctx, json=json)
    age = duration_seconds("cleanup", "--older-than", older_than) if older_than else None
    plan = plan_cleanup(obj.settings, stop=stop_daemon, older_than=age, orphans=orphans, dry_run=dry_run)
    if not obj.json:
        render_cleanup_plan(obj.out, plan)
    if dry_run or not plan.todo:
        if obj.json:
            obj.emit(CleanupResult(plan), render_cleanup)
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to clean up without confirmation (stdin is not a terminal)",
                             hint="review with --dry-run, then pass --yes")
        if not typer.confirm("Go ahead?", default=False, err=True):
            raise typer.Exit(1)
    result = CleanupResult(plan, run_cleanup(obj.settings, plan, timeout=timeout))
    obj.emit(result, lambda console, data: render_cleanup_report(console, data.report))
    if result.report is not None and result.report.failed:
        raise SollamaError("some cleanup steps failed (see above)")


@service_app.command("unit")
def service_unit(
    ctx: typer.Context,
    user: Annotated[bool, typer.Option("--user", help="A user unit (~/.config/systemd/user) instead of a system "
                                                      "one.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="The watchdog's unit (`sollama watch`, after "
                                                        "sollama.service) instead of the daemon's.")] = False,
    gateway: Annotated[bool, typer.Option("--gateway", help="The API gateway's unit (`sollama serve`, after "
                                                            "sollama.service) instead of the daemon's.")] = False,
    workers: Annotated[int | None, typer.Option("--workers", metavar="N",
                                                help="With --gateway: `sollama serve --workers N` (default: "
                                                     "gateway.workers when the service starts).")] = None,
) -> None:
    """Print a systemd unit that runs `sollama start --foreground` (with --watch: `sollama watch`; with
    --gateway: `sollama serve`).

    Example: [bold]sollama service unit --user > ~/.config/systemd/user/sollama.service[/bold]
    """
    from ollama_ops.render.server import render_unit
    from ollama_ops.services.launch import service_unit as build_unit

    if watch and gateway:
        raise UsageError("--watch and --gateway are two units: print them one at a time")
    if workers is not None and not gateway:
        raise UsageError("--workers is the gateway's: it goes with --gateway")
    obj = use(ctx)
    if workers is not None and workers > 1 and not obj.settings.gateway.state:
        from ollama_ops.gateway.settings import WORKERS_NEED_STATE

        raise UsageError(WORKERS_NEED_STATE.format("--workers"))
    render_unit(obj.out, build_unit(user=user, config_path=obj.config_path, watch=watch, gateway=gateway,
                                    workers=workers, drain_timeout=obj.settings.gateway.drain_timeout))
