"""`sollama serve`: the gateway in front of Ollama (keys, limits, a fair queue, metrics, usage)."""

from __future__ import annotations

from typing import Annotated

import typer

from ollama_ops.cli.context import use


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    listen: Annotated[str | None, typer.Option("--listen", "-l", metavar="HOST:PORT",
                                               help="Address to listen on (default: gateway.listen, "
                                                    "127.0.0.1:8000).")] = None,
    upstream: Annotated[str | None, typer.Option("--upstream", "-u", metavar="URL",
                                                 help="Ollama's address (default: gateway.upstream, else "
                                                      "server.host).")] = None,
    slots: Annotated[int | None, typer.Option("--slots",
                                              help="Requests in flight upstream at once (default: gateway.slots, "
                                                   "else server.num_parallel, else 1).")] = None,
    workers: Annotated[int | None, typer.Option("--workers",
                                                help="Worker processes on the listen port (default: "
                                                     "gateway.workers, 1); above 1 only with shared state "
                                                     "(gateway.state: redis://…), where the slots and limits "
                                                     "live.")] = None,
    insecure_no_auth: Annotated[bool, typer.Option("--insecure-no-auth",
                                                   help="Serve beyond loopback without keys (never on a shared "
                                                        "network).")] = False,
) -> None:
    """Run the API gateway in the foreground: Ollama's API (native /api and OpenAI /v1) behind API keys, limits,
    a fair queue, Prometheus /metrics, an access log and usage records.

    SIGTERM stops it gracefully (queued requests get 503, in-flight ones finish within gateway.drain_timeout).
    Example: [bold]sollama keys create ci --rpm 60 && sollama serve --listen 127.0.0.1:8000[/bold]
    """
    from ollama_ops.gateway.server import serve as run
    from ollama_ops.gateway.settings import from_settings
    from ollama_ops.render.gateway import render_serving

    obj = use(ctx)
    config = from_settings(obj.settings, listen=listen, upstream=upstream, slots=slots, workers=workers,
                           insecure_no_auth=insecure_no_auth)
    run(config, on_ready=lambda cfg, keys: render_serving(obj.err, cfg, keys, workers=cfg.workers))
