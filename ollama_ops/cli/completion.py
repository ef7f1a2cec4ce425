"""`sollama completion bash|zsh|fish`: print the shell completion script."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

app = typer.Typer(help="Print a shell completion script.")


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion_script(shell: str) -> str:
    """The completion script Click generates for `sollama` in `shell`."""
    from click.shell_completion import get_completion_class

    from ollama_ops.cli.app import app as root_app

    command = typer.main.get_command(root_app)
    cls = get_completion_class(shell)
    assert cls is not None
    return cls(command, {}, "sollama", "_SOLLAMA_COMPLETE").source()


@app.callback(invoke_without_command=True)
def completion(shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish")]) -> None:
    """Print the script; e.g. [bold]sollama completion bash > ~/.local/share/bash-completion/completions/sollama[/bold]
    """
    typer.echo(completion_script(shell.value), nl=False)
