"""`sollama watch`: the self-healing watchdog, in the foreground (for systemd: `sollama service unit --watch`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ollama_ops.cli.context import use


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)


def watch(
    ctx: typer.Context,
    interval: Annotated[float | None, typer.Option("--interval", metavar="SECONDS",
                                                   help="Seconds between probes (default watch.interval).")] = None,
    probe_timeout: Annotated[float | None, typer.Option("--probe-timeout", metavar="SECONDS",
                                                        help="Seconds a probe may take (default "
                                                             "watch.probe_timeout).")] = None,
    probe_model: Annotated[str | None, typer.Option("--probe-model", metavar="MODEL",
                                                    help="Model of the 1-token generation (default "
                                                         "watch.probe_model, else the smallest installed).")] = None,
    failures: Annotated[int | None, typer.Option("--failures", help="Failed probes in a row before acting "
                                                                    "(default watch.failures).")] = None,
    max_restarts: Annotated[int | None, typer.Option("--max-restarts", help="Restarts per hour before giving up "
                                                                            "with exit 7 (default "
                                                                            "watch.max_restarts).")] = None,
) -> None:
    """Watch the daemon and heal it: a deep probe every watch.interval; after watch.failures failures unload the
    stuck model, then restart the daemon (verified PID only); exit 7 after watch.max_restarts restarts in an hour.

    Every event is a line on stderr, a row in the event log (`sollama status` shows the last restarts) and, with
    watch.on_event set, a run of that command with the event as JSON on stdin.

    Example: [bold]sollama watch --interval 15 --failures 3[/bold]
    """
    from ollama_ops.config import load_settings
    from ollama_ops.render.watch import event_printer
    from ollama_ops.services.watch import Watchdog

    obj = use(ctx)
    flags = {"server.host": obj.host, "watch.interval": interval, "watch.probe_timeout": probe_timeout,
             "watch.probe_model": probe_model, "watch.failures": failures, "watch.max_restarts": max_restarts}
    settings = load_settings(obj.config_path, flags=flags)
    Watchdog(settings, emit=event_printer(obj.err)).run()
