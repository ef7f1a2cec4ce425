"""The root of the CLI: global options, the error boundary, and the command groups."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from ollama_ops import __version__
from ollama_ops.cli.context import AppContext
from ollama_ops.errors import ExitCode, SollamaError


def _debug_enabled(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("SOLLAMA_DEBUG", "") not in ("", "0", "false")


def _traceback(ctx: click.Context) -> None:
    if _debug_enabled(ctx):
        import traceback

        traceback.print_exc()


def _report(message: str) -> None:
    from ollama_ops.render.console import display_error, make_console

    display_error(make_console(stderr=True), message)


def _usage_line(exc: click.UsageError) -> str:
    """Click's message (it names the option and the value) and where to read the usage, on one line."""
    where = f" (see `{exc.ctx.command_path} -h`)" if exc.ctx is not None else ""
    return " ".join(f"{exc.format_message()}{where}".split())


# Every command of the root, in help order: the module under ollama_ops.cli whose `register(root)` adds it, and
# the first sentence of its help (its line in `sollama --help`). A command's module is imported and turned into
# Click commands only when that command is looked up, so `sollama status` builds one command, not forty (about
# 30 ms of every call from a CI loop), and `sollama --help` builds none.
# tests/test_cli_boundary.py checks this table against the modules and their docstrings.
COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("server", "Start the shared `ollama serve` detached, or report the one already running (exit 0)."),
    "stop": ("server", "Stop the gateway and the daemon sollama started (SIGTERM, then SIGKILL after --timeout); "
                       "only a process verified by pid, creation time and command line is signalled."),
    "restart": ("server", "Stop the daemon (as `stop`), then start it again with the same settings (as `start`)."),
    "status": ("status", "Address, latency, version, process (pid, uptime, RSS, CPU), loaded and installed models, "
                         "memory budget vs used, free disk, last log errors."),
    "doctor": ("doctor", "Check the binary and its version, the port, HOME, the models dir and its free space, RAM "
                         "and swap, GPUs, the config, a stale pid file and exposure beyond loopback."),
    "logs": ("server", "The daemon's log (its stdout and stderr), across rotated files."),
    "cleanup": ("server", "Free what the daemon left behind: unload models, optionally stop it, remove stale "
                          "pid/lock files, rotate big logs, prune old bench history, and terminate orphaned runner "
                          "processes."),
    "memory": ("memory", "Budget (RAM − reserve + VRAM), each model's predicted footprint with Ollama's formula, "
                         "which fit alone and together, and the OLLAMA_* settings `sollama start` will use (with "
                         "--save, to the state dir; the plan covers the models measured, so leave out --model to "
                         "plan for all of them)."),
    "service": ("server", "Run sollama's daemon under a service manager (systemd)."),
    "generate": ("generate", "Generate a completion; stdout gets exactly the model's text (a newline is added only "
                             "on a terminal)."),
    "chat": ("chat", "Chat with a model: streaming answers, /help for commands, transcripts saved under the data "
                     "dir."),
    "bench": ("bench", "Benchmark a model: TTFT, TPOT, ITL, E2EL, throughput and goodput; the run is stored for "
                       "`sollama report`."),
    "report": ("report", "List stored bench runs, show one, compare two (CI gate: --fail-on-regression exits 6), or "
                         "summarise usage."),
    "models": ("models", "List, inspect, import, remove and unload models (HTTP API only: works remotely)."),
    "serve": ("serve", "Run the API gateway in the foreground: Ollama's API (native /api and OpenAI /v1) behind "
                       "API keys, limits, a fair queue, Prometheus /metrics, an access log and usage records."),
    "keys": ("keys", "Create, list, revoke and rotate the gateway's API keys (a secret is shown once, stored only "
                     "as a hash)."),
    "config": ("config_cmd", "Show, locate, create and validate the configuration."),
    "watch": ("watch", "Watch the daemon and heal it: a deep probe every watch.interval; after watch.failures "
                       "failures unload the stuck model, then restart the daemon (verified PID only); exit 7 after "
                       "watch.max_restarts restarts in an hour."),
    "completion": ("completion", "Print a shell completion script."),
}


def module_commands(module_name: str) -> dict[str, click.Command]:
    """The Click commands that `ollama_ops.cli.<module_name>` registers, built on a staging Typer with the root's
    settings."""
    from typer.main import get_group

    module = importlib.import_module(f"ollama_ops.cli.{module_name}")
    staging = typer.Typer(rich_markup_mode="rich", pretty_exceptions_enable=False, add_completion=False)
    module.register(staging)
    commands = dict(get_group(staging).commands)
    from ollama_ops.cli.params import bound_command

    for name, command in commands.items():
        bound_command(command, name)  # every numeric option gets its range from core/options.py
    return commands


def _os_error_message(exc: OSError) -> str:
    """One line for an OSError that reached the boundary, naming the path (e.g. a read-only or immutable state
    dir)."""
    import errno

    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return f"{reason}"
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
    text = f"cannot use {where}: {reason}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        text += " (the path or its directory is read-only or immutable; fix that, or point SOLLAMA_HOME at a " \
                "writable directory; `sollama doctor` checks them)"
    return text


class SollamaGroup(TyperGroup):
    """The one place that turns exceptions into a one-line message and an exit code; loads commands lazily
    (see COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            for name, command in module_commands(COMMANDS[cmd_name][0]).items():
                self.commands.setdefault(name, command)
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # No arguments: the help, exit 2 (a usage error, as Click has it), without Typer's rich error path.
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(int(ExitCode.USAGE))
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The root help from the COMMANDS table (no command is built; see render/help.py)."""
        from ollama_ops.render.console import make_console
        from ollama_ops.render.help import render_root_help

        render_root_help(make_console(), usage=" ".join([ctx.command_path, *self.collect_usage_pieces(ctx)]),
                         help_text=self.help or "", params=self.get_params(ctx),
                         commands=[(name, summary) for name, (_, summary) in COMMANDS.items()], epilog=self.epilog)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:  # a bad root option: one line, as every other usage error
            _report(_usage_line(exc))
            raise click.exceptions.Exit(int(ExitCode.USAGE)) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # bad arguments to a command: one line naming the option, exit 2
            _report(_usage_line(exc))
            raise click.exceptions.Exit(int(ExitCode.USAGE)) from None
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except SollamaError as exc:
            _traceback(ctx)
            _report(exc.one_line())
            raise click.exceptions.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            from ollama_ops.interrupts import terminated

            _traceback(ctx)
            _report("terminated (SIGTERM)" if terminated() else "interrupted")
            raise click.exceptions.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            # The reader went away (`sollama ... | head`): nothing more to say, and no traceback at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(int(ExitCode.ERROR)) from None
        except OSError as exc:  # a file the command needs: say which, and why, not "internal error"
            _traceback(ctx)
            _report(_os_error_message(exc))
            raise click.exceptions.Exit(int(ExitCode.ERROR)) from None
        except Exception as exc:  # a bug: still one line unless --debug
            _traceback(ctx)
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


def main() -> None:
    """Console-script entry point (SIGTERM ends a command like Ctrl-C: see ollama_ops/interrupts.py)."""
    from ollama_ops.interrupts import install

    install()
    if os.environ.get("_SOLLAMA_COMPLETE"):  # a shell asks for completions (see `sollama completion`)
        from typer.completion import completion_init

        completion_init()
    app(prog_name="sollama")
