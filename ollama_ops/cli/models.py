"""`sollama models`: list, show, import, rm, unload. Only the HTTP API is used, so all work against a remote
server too."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ollama_ops.cli.context import ApiKeyOption, JsonOption, use

app = typer.Typer(help="List, inspect, import, remove and unload models (HTTP API only: works remotely).",
                  no_args_is_help=True)

NameArg = typer.Argument(metavar="NAME", help="Model name, e.g. smollm2:135m (':latest' if no tag).")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")


@app.command("list")
def list_models(ctx: typer.Context, api_key: Annotated[str | None, ApiKeyOption] = None,
                json: Annotated[bool, JsonOption] = False) -> None:
    """Installed models, newest first: name, size, family, parameters, quantization, age.

    Example: [bold]sollama models list --json | jq -r '.models[].name'[/bold]
    """
    from ollama_ops.render.models import render_model_list
    from ollama_ops.services import models

    obj = use(ctx, json=json, api_key=api_key)
    with obj.client() as client:
        data = models.ModelList(models.list_models(client))
    obj.emit(data, render_model_list)


@app.command("show")
def show(ctx: typer.Context, name: Annotated[str, NameArg], json: Annotated[bool, JsonOption] = False) -> None:
    """Details of one model: architecture, parameters, context length, layer and head counts, capabilities.

    Example: [bold]sollama models show smollm2:135m --json | jq .block_count[/bold]
    """
    from ollama_ops.render.models import render_model_details
    from ollama_ops.services.models import show_model

    obj = use(ctx, json=json)
    with obj.client() as client:
        data = show_model(client, name)
    obj.emit(data, render_model_details)


def _confirm_remove() -> Callable[[str], bool]:
    """The question `models rm` asks; without a terminal to ask on, it refuses (exit 2) unless --yes."""
    import click

    from ollama_ops.errors import UsageError

    def confirm(name: str) -> bool:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to remove '{name}' without confirmation (stdin is not a terminal)",
                             hint="pass --yes")
        return click.confirm(f"Remove model '{name}'?", default=False, err=True)

    return confirm


@app.command("rm")
def rm(
    ctx: typer.Context,
    name: Annotated[str, NameArg],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed when stdin is not a terminal).")]
    = False,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Remove a model (asks first unless --yes; its blobs go when no other model uses them).

    Example: [bold]sollama models rm old-model:7b --yes[/bold]
    """
    from ollama_ops.render.models import render_remove
    from ollama_ops.services.models import remove_model

    obj = use(ctx, json=json)
    with obj.client() as client:
        result = remove_model(client, name, confirm=None if yes else _confirm_remove())
    obj.emit(result, render_remove)
    if not result.removed:
        raise typer.Exit(1)


@app.command("unload")
def unload(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="Model to unload.")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Unload every loaded model.")] = False,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Free a model's memory now (keep_alive 0), or every loaded model with --all.

    Example: [bold]sollama models unload --all[/bold]
    """
    from ollama_ops.errors import SollamaError, UsageError
    from ollama_ops.render.models import render_unload
    from ollama_ops.services.models import unload_models

    if name and all_models:
        raise UsageError("name a model or pass --all, not both")
    obj = use(ctx, json=json)
    with obj.client() as client:
        data = unload_models(client, name, all_models=all_models)
    obj.emit(data, render_unload)
    if data.still_loaded:
        raise SollamaError(f"still loaded after the wait: {', '.join(data.still_loaded)}",
                           hint="a request may still be running on it")


def _template(template: str | None, template_file: Path | None) -> str | None:
    from ollama_ops.errors import UsageError

    if template is not None and template_file is not None:
        raise UsageError("give --template or --template-file, not both")
    if template_file is None:
        return template
    from ollama_ops.edges.textfile import read_text_file

    return read_text_file(template_file, what="--template-file", error=UsageError)


@app.command("import")
def import_model(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.gguf", help="Local GGUF file.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Name for the new model, e.g. mymodel:7b.")],
    template: Annotated[str | None, typer.Option("--template", help="Prompt template (Go template).")] = None,
    template_file: Annotated[Path | None, typer.Option("--template-file", metavar="FILE",
                                                       help="Read the prompt template from FILE.")] = None,
    system: Annotated[str | None, typer.Option("--system", help="Default system prompt.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", metavar="KEY=VALUE",
                                                    help="Default parameter (repeatable), e.g. temperature=0.2, "
                                                         "stop='<|im_end|>'.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing model of that name.")] = False,
    sha256: Annotated[str | None, typer.Option("--sha256", metavar="DIGEST",
                                               help="Expected sha256 of the file; abort on mismatch.")] = None,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Import a local GGUF: hash it, upload it unless the server has it, create the model.

    Example: [bold]sollama models import SmolLM2-135M-Instruct.Q4_1.gguf --name smollm2:135m[/bold]
    """
    from ollama_ops.render.models import ImportProgress, render_import
    from ollama_ops.services.models import import_gguf, parse_params

    obj = use(ctx, json=json)
    text = _template(template, template_file)
    parameters = parse_params(param)
    with obj.client() as client, ImportProgress(obj.err) as progress:
        result = import_gguf(client, file, name, template=text, system=system, parameters=parameters,
                             force=force, progress=progress, expected_digest=sha256)
    obj.emit(result, render_import)
