"""`sollama generate`: one prompt, the answer streamed to stdout and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ollama_ops.cli.context import ApiKeyOption, JsonOption, use

ModelOption = typer.Option("--model", "-m", help="Model name, e.g. smollm2:135m.", show_default=False)
SystemOption = typer.Option("--system", help="System message.")
OptionOption = typer.Option("--option", "-o", metavar="KEY=VALUE",
                            help="Any Ollama option, typed by its schema (repeatable): -o top_k=20.")
TemperatureOption = typer.Option("--temperature", help="Sampling temperature (option temperature).")
SeedOption = typer.Option("--seed", help="Random seed (option seed).")
NumCtxOption = typer.Option("--num-ctx", help="Context window in tokens (option num_ctx).")
MaxTokensOption = typer.Option("--max-tokens", help="Stop after this many tokens (option num_predict).")
KeepAliveOption = typer.Option("--keep-alive", help="How long the model stays loaded: 300, 10m, -1 (forever), 0. "
                                                    "Default: generate.keep_alive, else the server's.")
FormatOption = typer.Option("--format", metavar="json|SCHEMA.json",
                            help="Constrain the answer: 'json', or a JSON schema file.")
TimeoutOption = typer.Option("--timeout", metavar="SECONDS",
                             help="Longest wait for the next chunk (default: generate.timeout); a stall exits 5.")
LogPromptsOption = typer.Option("--log-prompts", help="Keep the prompt text in the usage history.")


def generate(
    ctx: typer.Context,
    model: Annotated[str, ModelOption],
    prompt: Annotated[str | None, typer.Argument(help="The prompt; '-' reads stdin (also read when piped and no "
                                                      "PROMPT/--file is given).", show_default=False)] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the prompt (or add to it) from a "
                                                                   "file.")] = None,
    system: Annotated[str | None, SystemOption] = None,
    format: Annotated[str | None, FormatOption] = None,
    option: Annotated[list[str] | None, OptionOption] = None,
    temperature: Annotated[float | None, TemperatureOption] = None,
    seed: Annotated[int | None, SeedOption] = None,
    num_ctx: Annotated[int | None, NumCtxOption] = None,
    max_tokens: Annotated[int | None, MaxTokensOption] = None,
    keep_alive: Annotated[str | None, KeepAliveOption] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Send the prompt without the model's template.")] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Ask for one response instead of a stream "
                                                                "(--timeout then bounds the whole wait).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Timings on stderr afterwards, like "
                                                                  "`ollama run --verbose`.")] = False,
    timeout: Annotated[float | None, TimeoutOption] = None,
    log_prompts: Annotated[bool, LogPromptsOption] = False,
    api_key: Annotated[str | None, ApiKeyOption] = None,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Generate a completion; stdout gets exactly the model's text (a newline is added only on a terminal).

    Examples: [bold]sollama generate -m smollm2:135m "Why is the sky blue?"[/bold] ·
    [bold]git diff | sollama generate -m smollm2:135m --system "Review this diff" -[/bold] ·
    [bold]sollama generate -m smollm2:135m --format json --json "List 3 colours"[/bold]
    """
    import sys

    from ollama_ops.client.protocol import GenerateRequest
    from ollama_ops.edges.textfile import read_stdin_text
    from ollama_ops.errors import UsageError
    from ollama_ops.render.console import display_warning
    from ollama_ops.render.generate import render_generate_json, render_stats
    from ollama_ops.repl import RawOutput, stdin_is_terminal
    from ollama_ops.services import generate as svc

    obj = use(ctx, json=json, api_key=api_key)
    text = svc.read_prompt(prompt, file=file, stdin_text=lambda: read_stdin_text(sys.stdin, error=UsageError),
                           stdin_is_tty=stdin_is_terminal())
    knobs = svc.request_knobs(obj.settings, option=option, temperature=temperature, seed=seed, num_ctx=num_ctx,
                              max_tokens=max_tokens, format=format, keep_alive=keep_alive, timeout=timeout)
    req = GenerateRequest(model=model, prompt=text, system=system, raw=raw, stream=not no_stream,
                          options=knobs.options, format=knobs.format, keep_alive=knobs.keep_alive)
    wait = knobs.wait
    usage = svc.UsagePolicy(command="generate", log_prompt=log_prompts,
                            on_warning=lambda message: display_warning(obj.err, message))
    out = None if obj.json else RawOutput(obj.out.file)
    with obj.client(read_timeout=wait) as client:
        try:
            report = svc.run_generation(client, req, on_text=out.write if out else None, read_timeout=wait,
                                        usage=usage)
        finally:
            if out:
                out.finish()
    if obj.json:
        render_generate_json(obj.out, report)
    if verbose:
        render_stats(obj.err, report)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
