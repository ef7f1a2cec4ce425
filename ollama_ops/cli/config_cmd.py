"""`sollama config`: show, path, init, validate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ollama_ops.cli.context import JsonOption, use

app = typer.Typer(help="Show, locate, create and validate the configuration.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="config")


@app.command("show")
def show(ctx: typer.Context, json: Annotated[bool, JsonOption] = False) -> None:
    """Effective settings and where each value came from (default, file, env, flag).

    Example: [bold]sollama config show --json | jq .entries[/bold]
    """
    from ollama_ops.config import describe
    from ollama_ops.render.config import render_config

    obj = use(ctx, json=json)
    obj.emit(describe(obj.settings), render_config)


@app.command("path")
def path(ctx: typer.Context, json: Annotated[bool, JsonOption] = False) -> None:
    """Where the config file, state (pid, logs) and data (history, transcripts) live."""
    from ollama_ops import paths
    from ollama_ops.config import config_file_path
    from ollama_ops.render.config import render_paths

    obj = use(ctx, json=json)
    cfg = config_file_path(obj.config_path)
    obj.emit({"config_file": str(cfg), "config_exists": cfg.exists(), "state_dir": str(paths.state_dir()),
              "data_dir": str(paths.data_dir()), "tools_dir": str(paths.tools_dir())}, render_paths)


@app.command("init")
def init(
    ctx: typer.Context,
    target: Annotated[Path | None, typer.Argument(help="Where to write (default: the config path).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write the commented example config; refuses to overwrite without --force."""
    from ollama_ops.config import config_file_path, write_example
    from ollama_ops.render.console import display_success

    obj = use(ctx)
    written = write_example(target or config_file_path(obj.config_path), force=force)
    display_success(obj.err, f"wrote {written}")
    obj.out.print(str(written))


@app.command("validate")
def validate(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="File to check (default: the active config).")] = None,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Check a config file; exit 3 with file, line and column (or the bad key) when it is invalid."""
    from ollama_ops.config import config_file_path, load_file
    from ollama_ops.errors import ConfigError
    from ollama_ops.render.config import render_validation

    obj = use(ctx, json=json)
    target = file or config_file_path(obj.config_path)
    if not target.exists():
        raise ConfigError(f"config file not found: {target}")
    load_file(target)
    obj.emit({"file": str(target), "valid": True}, render_validation)
