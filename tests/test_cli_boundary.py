"""The CLI's one error boundary: every exit code reached through the real CLI, one line on stderr, tracebacks only
with --debug; --version and -h everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import typer

from ollama_ops import __version__
from ollama_ops.cli.app import app
from tests.conftest import ROOT, free_port
from tests.lifecycle_helpers import interrupt, running, wait_for


def _one_line_error(result, code: int) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


# -- each exit code ------------------------------------------------------------------------------------------------

def test_exit_0_and_version(sollama):
    for flag in ("--version", "-V"):
        result = sollama(flag)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"sollama {__version__}\n"


@pytest.mark.parametrize("args, text", [
    (["--no-such-flag"], "No such option"),
    (["no-such-command"], "No such command"),
    (["models", "show"], "Missing argument"),
    (["models", "import", "x.gguf"], "Missing option"),
    (["completion", "tcsh"], "Invalid value"),
])
def test_exit_2_bad_usage(sollama, args, text):
    result = sollama(*args)
    assert result.exit_code == 2, result.output
    assert text in result.stderr
    assert result.stdout == ""


def test_exit_2_from_a_usage_error_raised_by_a_command(sollama, stub):
    _one_line_error(sollama("--host", stub.host, "models", "unload"), 2)


def test_exit_3_bad_config(sollama, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("client:\n  retries: [\n")
    message = _one_line_error(sollama("--config", str(cfg), "models", "list"), 3)
    assert f"{cfg}:3:1" in message


def test_exit_4_nothing_listening_is_one_line(sollama):
    port = free_port()
    result = sollama("--host", f"127.0.0.1:{port}", "models", "list")
    message = _one_line_error(result, 4)
    assert message.startswith(f"error: cannot connect to Ollama at http://127.0.0.1:{port}")
    assert result.stdout == ""


def test_exit_4_via_ollama_host_env(sollama, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    _one_line_error(sollama("models", "list", "--json"), 4)


def test_exit_1_server_error_from_the_stub(sollama, stub):
    stub.configure(status=500, error="llama runner process has terminated: signal: killed")
    message = _one_line_error(sollama("--host", stub.host, "models", "unload", "stub-model"), 1)
    assert message == "error: server error: llama runner process has terminated: signal: killed"


def test_exit_1_model_not_found_lists_installed(sollama, stub):
    message = _one_line_error(sollama("--host", stub.host, "models", "show", "llama3"), 1)
    assert message == "error: model 'llama3' not found; installed: stub-model:latest"


def test_exit_5_stalled_stream(sollama, stub):
    stub.configure(tokens=4, stall_after=1)
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "--timeout", "0.3", "hi")
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.stderr
    assert "stalled" in result.stderr


# -- --debug ---------------------------------------------------------------------------------------------------------

def test_debug_flag_shows_the_traceback(sollama):
    result = sollama("--debug", "--host", f"127.0.0.1:{free_port()}", "models", "list")
    assert result.exit_code == 4, result.output
    assert "Traceback (most recent call last)" in result.stderr
    assert "ServerUnreachable" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: cannot connect to Ollama")


@pytest.mark.parametrize("value, shown", [("1", True), ("true", True), ("0", False), ("", False)])
def test_sollama_debug_env(sollama, monkeypatch, value, shown):
    monkeypatch.setenv("SOLLAMA_DEBUG", value)
    result = sollama("--host", f"127.0.0.1:{free_port()}", "models", "list")
    assert result.exit_code == 4, result.output
    assert ("Traceback" in result.stderr) is shown


def test_debug_shows_the_traceback_of_a_config_error(sollama, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("nope: 1\n")
    result = sollama("--debug", "--config", str(cfg), "config", "show")
    assert result.exit_code == 3, result.output
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


# -- Ctrl-C ------------------------------------------------------------------------------------------------------------

def _sollama_argv() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "sollama"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "ollama_ops"]


def test_sigint_exits_130_without_traceback(stub, isolated):
    stub.configure(tokens=8, stall_after=1)
    env = {**os.environ, "SOLLAMA_HOME": str(isolated), "NO_COLOR": "1"}
    with running([*_sollama_argv(), "--host", stub.host, "generate", "-m", "stub-model", "--timeout", "60",
                  "tell me a story"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 stdin=subprocess.DEVNULL) as proc:
        assert wait_for(lambda: any(p == "/api/generate" for _, p, _ in stub.requests), 20), "no request arrived"
        time.sleep(0.3)  # let the first chunk arrive and the client block on the stall
        assert proc.poll() is None, proc.communicate()
        stdout, stderr = interrupt(proc, 15)
    err = stderr.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    assert stdout.decode().startswith("tok")


def test_python_dash_m_version_as_a_real_subprocess():
    done = subprocess.run([sys.executable, "-m", "ollama_ops", "--version"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"sollama {__version__}\n"
    assert done.stderr == ""


def test_console_script_exit_4_as_a_real_subprocess(isolated):
    env = {**os.environ, "SOLLAMA_HOME": str(isolated)}
    done = subprocess.run([*_sollama_argv(), "--host", f"127.0.0.1:{free_port()}", "models", "list"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stdout == ""


# -- -h on every command -----------------------------------------------------------------------------------------------

def _command_paths(command: click.Command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            paths += _command_paths(sub, (*prefix, name))
    return paths


ALL_COMMANDS = _command_paths(typer.main.get_command(app))


def test_the_lazy_command_table_matches_what_the_modules_register():
    import importlib
    import pkgutil

    import ollama_ops.cli
    from ollama_ops.cli.app import COMMANDS, module_commands
    from ollama_ops.render.help import first_sentence

    modules = {module for module, _ in COMMANDS.values()}
    for module in modules:
        built = module_commands(module)
        assert sorted(built) == sorted(n for n, (m, _) in COMMANDS.items() if m == module), module
        for name, command in built.items():  # the root help's line is the first sentence of the command's help
            assert COMMANDS[name][1] == first_sentence(command.help or ""), name
    registering = {info.name for info in pkgutil.iter_modules(ollama_ops.cli.__path__)
                   if hasattr(importlib.import_module(f"ollama_ops.cli.{info.name}"), "register")}
    assert registering == modules


@pytest.mark.parametrize(("text", "sentence"), [
    ("Stop it. Then go.", "Stop it."),
    ("One line\nwrapped (exit 0). Exit 1 when not.\n\nMore.", "One line wrapped (exit 0)."),
    ("Keeps e.g. abbreviations, and 1.5 numbers. Stops here.", "Keeps e.g. abbreviations, and 1.5 numbers."),
    ("No full stop at all", "No full stop at all"),
])
def test_first_sentence(text, sentence):
    from ollama_ops.render.help import first_sentence

    assert first_sentence(text) == sentence


def test_root_help_lists_every_command_with_its_summary_and_the_global_options(sollama):
    from ollama_ops.cli.app import COMMANDS

    result = sollama("--help")
    assert result.exit_code == 0 and result.stderr == ""
    out = " ".join(result.stdout.replace("│", " ").split())
    assert out.startswith("Usage: sollama [OPTIONS] COMMAND [ARGS]...")
    for name, (_, summary) in COMMANDS.items():
        assert f" {name} {summary} " in out + " ", name
    for option in ("--json", "--debug", "--config -c PATH", "--host -H ADDR", "--version -V", "--help -h"):
        assert f" {option} " in out, option
    assert "Examples: sollama start" in out
    bare = sollama()
    assert bare.exit_code == 2 and bare.stdout.rstrip() == result.stdout.rstrip()  # no arguments: the help, exit 2


def test_the_tree_has_the_foundation_commands():
    names = {" ".join(p) for p in ALL_COMMANDS}
    assert {"config show", "config path", "config init", "config validate", "completion", "models list",
            "models show", "models import", "models rm", "models unload"} <= names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "sollama")
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_works_on_every_command(sollama, path, flag):
    result = sollama(*path, flag)
    assert result.exit_code == 0, result.output
    assert "Usage: sollama" in result.stdout
    assert result.stderr == ""


def test_help_does_not_import_heavy_modules():
    code = ("import sys; sys.argv=['sollama','--help']\n"
            "from ollama_ops.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('httpx', 'aiohttp', 'plotext', 'psutil') if m in sys.modules]\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path(ROOT))
    assert "HEAVY []" in done.stderr, done.stderr
