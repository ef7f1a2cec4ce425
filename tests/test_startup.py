"""Start-up cost: heavy libraries stay out of the paths that don't need them (DESIGN: CI calls sollama in loops).

Timing itself is measured by benchmarks/startup_time.py; here we assert what gets imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import free_port

PROBE = """
import atexit, json, sys
def report():
    heavy = [m for m in ("httpx", "aiohttp", "plotext", "psutil", "typer.rich_utils", "rich.markdown")
             if m in sys.modules]
    cli = sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("ollama_ops.cli."))
    sys.__stderr__.write("\\nIMPORTED=" + json.dumps(heavy) + "\\nCLI=" + json.dumps(cli) + "\\n")
atexit.register(report)
sys.argv = ["sollama"] + sys.argv[1:]
from ollama_ops.cli.app import main
main()
"""


def imported_by(*args: str, what: str = "IMPORTED") -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    line = [ln for ln in done.stderr.splitlines() if ln.startswith(what + "=")]
    assert line, done.stderr
    return json.loads(line[-1].split("=", 1)[1])


@pytest.mark.parametrize(("args", "modules"), [
    (["--version"], []),
    (["status"], ["status"]),
    (["report", "--help"], ["report"]),
    (["stop", "--help"], ["server"]),
])
def test_only_the_invoked_commands_module_is_loaded(args, modules):
    """Commands load lazily: `sollama status` builds the status command, not the other forty."""
    loaded = imported_by("--host", f"127.0.0.1:{free_port()}", *args, what="CLI")
    assert sorted(set(loaded) - {"app", "context", "params"}) == modules


def test_help_imports_no_network_or_chart_library_nor_typers_rich_help():
    """The root help is drawn by render/help.py: Typer's rich help alone would cost ~70 ms (rich.markdown)."""
    assert imported_by("--help") == []
    assert imported_by() == []  # no arguments: the same help
    assert imported_by("status", "--help") == ["typer.rich_utils", "rich.markdown"]  # a command's own page


def test_version_imports_nothing_heavy():
    assert imported_by("--version") == []


@pytest.mark.parametrize("args", [["status"], ["generate", "-m", "m", "hi"]])
def test_status_and_generate_skip_aiohttp_and_plotext(args):
    heavy = imported_by("--host", f"127.0.0.1:{free_port()}", *args)
    assert "aiohttp" not in heavy and "plotext" not in heavy, heavy
    assert "httpx" in heavy  # proves the command really ran its client
