"""`sollama completion bash|zsh|fish`: print the shell completion script."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

app = typer.Typer(help="Print a shell completion script.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="completion")


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion_script(shell: str) -> str:
    """The completion script for `sollama` in `shell`.

    Typer's, not Click's: at run time Typer reads `_SOLLAMA_COMPLETE=complete_bash` (Click's own scripts send
    `bash_complete`, which Typer rejects), and `ollama_ops.cli.app.main` registers Typer's completion classes."""
    from typer.completion import completion_init, get_completion_script

    completion_init()
    script = get_completion_script(prog_name="sollama", complete_var=COMPLETE_VAR, shell=shell)
    return script if script.endswith("\n") else script + "\n"


COMPLETE_VAR = "_SOLLAMA_COMPLETE"


@app.callback(invoke_without_command=True)
def completion(shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish")]) -> None:
    """Print the script; e.g. [bold]sollama completion bash > ~/.local/share/bash-completion/completions/sollama[/bold]
    """
    typer.echo(completion_script(shell.value), nl=False)
