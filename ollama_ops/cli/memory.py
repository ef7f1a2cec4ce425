"""`sollama memory`: predict each model's memory and recommend the daemon's OLLAMA_* settings."""

from __future__ import annotations

from typing import Annotated

import typer

from ollama_ops.cli.context import JsonOption, use


def register(app: typer.Typer) -> None:
    app.command("memory")(memory)


def _kv_type(value: str | None) -> str | None:
    if value is not None and value not in ("f16", "q8_0", "q4_0"):
        raise typer.BadParameter("must be f16, q8_0 or q4_0")
    return value


def memory(
    ctx: typer.Context,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only this model (repeatable).")] = None,
    num_ctx: Annotated[int | None, typer.Option("--num-ctx", help="Context per slot (default: "
                                                "server.context_length, else Ollama's default).")] = None,
    parallel: Annotated[int | None, typer.Option("--parallel", help="Parallel slots (default: "
                                                 "server.num_parallel, else 1).")] = None,
    kv_cache_type: Annotated[str | None, typer.Option("--kv-cache-type", callback=_kv_type, metavar="f16|q8_0|q4_0",
                                                      help="KV cache type (default: server.kv_cache_type, "
                                                           "else chosen to fit).")] = None,
    save: Annotated[bool, typer.Option("--save", help="Save the plan for `sollama start` (refused, exit 1, when a "
                                                      "model does not fit). Without it, a what-if changes nothing.")]
    = False,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Budget (RAM − reserve + VRAM), each model's predicted footprint with Ollama's formula, which fit alone and
    together, and the OLLAMA_* settings `sollama start` will use (with --save, to the state dir; the plan covers
    the models measured, so leave out --model to plan for all of them).

    Example: [bold]sollama memory --num-ctx 8192 --parallel 2 --json | jq .recommendations[/bold]
    """
    from ollama_ops.render.memory import render_memory
    from ollama_ops.services.memory import check_savable, plan_memory

    obj = use(ctx, json=json)
    with obj.client(read_timeout=30) as client:
        plan = plan_memory(client, obj.settings, models=model or None, num_ctx=num_ctx, parallel=parallel,
                           kv_cache_type=kv_cache_type, save=save)
    obj.emit(plan, render_memory)
    if save:
        check_savable(plan)
