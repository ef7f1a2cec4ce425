"""`sollama chat`: an interactive conversation (or a one-shot answer when stdin is piped)."""

from __future__ import annotations

from typing import Annotated

import typer

from ollama_ops.cli.context import ApiKeyOption, use
from ollama_ops.cli.generate import (
    FormatOption,
    KeepAliveOption,
    LogPromptsOption,
    MaxTokensOption,
    NumCtxOption,
    OptionOption,
    SeedOption,
    SystemOption,
    TemperatureOption,
    TimeoutOption,
)


def chat(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name (default with --resume: the "
                                                                    "transcript's).", show_default=False)] = None,
    resume: Annotated[str | None, typer.Option("--resume", "-r", metavar="NAME",
                                               help="Continue a saved transcript.")] = None,
    system: Annotated[str | None, SystemOption] = None,
    option: Annotated[list[str] | None, OptionOption] = None,
    temperature: Annotated[float | None, TemperatureOption] = None,
    seed: Annotated[int | None, SeedOption] = None,
    num_ctx: Annotated[int | None, NumCtxOption] = None,
    max_tokens: Annotated[int | None, MaxTokensOption] = None,
    keep_alive: Annotated[str | None, KeepAliveOption] = None,
    format: Annotated[str | None, FormatOption] = None,
    timeout: Annotated[float | None, TimeoutOption] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Render each finished answer as Markdown "
                                                              "(interactive only; piped output stays verbatim).")]
    = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Timings after every answer (on stderr).")]
    = False,
    log_prompts: Annotated[bool, LogPromptsOption] = False,
    api_key: Annotated[str | None, ApiKeyOption] = None,
) -> None:
    """Chat with a model: streaming answers, /help for commands, transcripts saved under the data dir.

    With stdin not a terminal, the whole input is one message: the answer is printed and chat exits.
    Examples: [bold]sollama chat -m smollm2:135m[/bold] · [bold]sollama chat --resume t1[/bold] ·
    [bold]echo "Say hi" | sollama chat -m smollm2:135m[/bold]
    """
    import sys

    from ollama_ops import repl
    from ollama_ops.errors import UsageError
    from ollama_ops.render.console import display_warning
    from ollama_ops.render.generate import render_generate_json, render_stats
    from ollama_ops.services import generate as svc
    from ollama_ops.services.chat import ChatSession
    from ollama_ops.services.models import show_model

    obj = use(ctx, api_key=api_key)
    if not model and not resume:
        raise UsageError("name a model with -m MODEL (or continue a transcript with --resume NAME)")
    knobs = svc.request_knobs(obj.settings, option=option, temperature=temperature, seed=seed, num_ctx=num_ctx,
                              max_tokens=max_tokens, format=format, keep_alive=keep_alive, timeout=timeout)
    session = ChatSession(model or "", system=system, options=knobs.options, format=knobs.format,
                          keep_alive=knobs.keep_alive)
    if resume:
        session.resume(resume, model=model, options=knobs.options, system=system)
    session.verbose = verbose
    wait = knobs.wait
    usage = svc.UsagePolicy(command="chat", log_prompt=log_prompts,
                            on_warning=lambda message: display_warning(obj.err, message))
    with obj.client(read_timeout=wait) as client:
        if not repl.stdin_is_terminal():
            report = repl.run_piped(session, client, stdin=sys.stdin, out=None if obj.json else obj.out.file,
                                    err=obj.err, read_timeout=wait, usage=usage)
            if obj.json:
                render_generate_json(obj.out, report)
            if verbose:
                render_stats(obj.err, report)
            return
        show_model(client, session.model)  # fail fast (exit 1 listing the installed models, 4 if down)
        repl.run_interactive(repl.ChatRepl(session, client, out=obj.out, err=obj.err, read_timeout=wait,
                                           usage=usage, markdown=markdown))


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
