"""The root of the CLI: global options, the error boundary, and the command groups."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from ollama_ops import __version__
from ollama_ops.cli.context import AppContext
from ollama_ops.errors import ExitCode, SollamaError


def _debug_enabled(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("SOLLAMA_DEBUG", "") not in ("", "0", "false")


def _report(message: str) -> None:
    from ollama_ops.render.console import display_error, make_console

    display_error(make_console(stderr=True), message)


class SollamaGroup(TyperGroup):
    """The one place that turns exceptions into a one-line message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except SollamaError as exc:
            if _debug_enabled(ctx):
                traceback.print_exc()
            _report(exc.one_line())
            raise click.exceptions.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            if _debug_enabled(ctx):
                traceback.print_exc()
            _report("interrupted")
            raise click.exceptions.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            # The reader went away (`sollama ... | head`): nothing more to say, and no traceback at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(int(ExitCode.ERROR)) from None
        except Exception as exc:  # a bug: still one line unless --debug
            if _debug_enabled(ctx):
                traceback.print_exc()
            _report(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
            raise click.exceptions.Exit(int(ExitCode.ERROR)) from None


app = typer.Typer(
    cls=SollamaGroup,
    name="sollama",
    help="Operations toolkit for a shared Ollama daemon: run it, size it, probe it, use it, benchmark it.",
    epilog="Examples:  sollama start · sollama status --json · sollama generate -m smollm2 'hi' · "
    "sollama bench -m smollm2 --report · sollama report --compare --fail-on-regression",
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sollama {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also SOLLAMA_DEBUG=1).")] = False,
    config: Annotated[str | None, typer.Option("--config", "-c", metavar="PATH",
                                               help="Config file (default: SOLLAMA_CONFIG, then the user "
                                                    "config dir).")] = None,
    host: Annotated[str | None, typer.Option("--host", "-H", metavar="ADDR",
                                             help="Ollama address, OLLAMA_HOST rules (e.g. 127.0.0.1:11434).")]
    = None,
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """sollama: start, stop, probe, use and benchmark a shared Ollama daemon."""
    ctx.obj = AppContext(json=json, debug=debug or _debug_enabled(ctx), config_path=config, host=host)


def _register() -> None:
    """Add every command group. Each module imports only typer at its top; services, clients and renderers are
    imported inside the commands, so `sollama --help` stays cheap."""
    from ollama_ops.cli import (
        bench,
        chat,
        completion,
        config_cmd,
        doctor,
        generate,
        memory,
        models,
        report,
        server,
        status,
    )

    for module in (server, status, doctor, memory, generate, chat, bench, report, models):
        module.register(app)
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(completion.app, name="completion")


_register()


def main() -> None:
    """Console-script entry point."""
    if os.environ.get("_SOLLAMA_COMPLETE"):  # a shell asks for completions (see `sollama completion`)
        from typer.completion import completion_init

        completion_init()
    app(prog_name="sollama")
