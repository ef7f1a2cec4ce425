"""Shell completion: the committed scripts in completions/ are what `sollama completion <shell>` prints now, and
they really complete the current command tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import click
import pytest
import typer

from ollama_ops.cli.app import app
from tests.conftest import ROOT

SHELLS = ["bash", "zsh", "fish"]
REGENERATE = ("regenerate them with `make completions` (or: for sh in bash zsh fish; do "
              ".venv/bin/sollama completion $sh > completions/sollama.$sh; done) and commit the result")
SOLLAMA_BIN = ROOT / ".venv" / "bin"


@pytest.mark.parametrize("shell", SHELLS)
def test_committed_script_is_up_to_date(sollama, shell):
    result = sollama("completion", shell)
    assert result.exit_code == 0, result.output
    committed = ROOT / "completions" / f"sollama.{shell}"
    assert committed.is_file(), f"{committed} is missing: {REGENERATE}"
    assert committed.read_text() == result.stdout, f"{committed} is out of date with the CLI: {REGENERATE}"


@pytest.mark.parametrize("shell", SHELLS)
def test_script_calls_back_with_typer_instruction(sollama, shell):
    script = sollama("completion", shell).stdout
    assert f"_SOLLAMA_COMPLETE=complete_{shell}" in script
    assert script.endswith("\n")


def _complete(env: dict[str, str]) -> list[str]:
    if not (SOLLAMA_BIN / "sollama").is_file():
        pytest.skip("needs the console script in .venv/bin")
    done = subprocess.run([str(SOLLAMA_BIN / "sollama")], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout.splitlines()


_ROOT = typer.main.get_command(app)
TOP_LEVEL = sorted(_ROOT.list_commands(click.Context(_ROOT)))  # type: ignore[attr-defined]


def test_bash_protocol_completes_every_top_level_command():
    words = _complete({"_SOLLAMA_COMPLETE": "complete_bash", "COMP_WORDS": "sollama ", "COMP_CWORD": "1"})
    assert sorted(words) == TOP_LEVEL


def test_zsh_protocol_completes_subcommands_with_help():
    out = "\n".join(_complete({"_SOLLAMA_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "sollama models "}))
    for name in ("list", "show", "rm", "unload", "import"):
        assert f'"{name}":' in out


def test_fish_protocol_completes_subcommands():
    lines = _complete({"_SOLLAMA_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args",
                       "_TYPER_COMPLETE_ARGS": "sollama config "})
    assert [line.split("\t")[0] for line in lines] == ["show", "path", "init", "validate"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_committed_bash_script_completes_in_a_real_bash():
    if not (SOLLAMA_BIN / "sollama").is_file():
        pytest.skip("needs the console script in .venv/bin")
    script = ROOT / "completions" / "sollama.bash"
    program = (f"source {script}; COMP_WORDS=(sollama models import x.gguf --n); COMP_CWORD=4; "
               "_sollama_completion sollama; printf '%s\\n' \"${COMPREPLY[@]}\"")
    env = {**os.environ, "PATH": f"{SOLLAMA_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["--name"]


def test_completion_needs_a_known_shell(sollama):
    result = sollama("completion", "powershell")
    assert result.exit_code == 2, result.output


def test_completion_script_imports_no_network_stack():
    code = ("import sys\nfrom ollama_ops.cli.completion import completion_script\ncompletion_script('bash')\n"
            "print([m for m in ('httpx', 'aiohttp') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stderr
