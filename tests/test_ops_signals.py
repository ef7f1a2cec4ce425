"""SIGTERM to a sollama command ends it like Ctrl-C: the data is saved, a message says so, exit 130 (the real
entry point in a subprocess; the stub paces the stream so the signal arrives mid-way)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ollama_ops.edges.store import Store
from tests.lifecycle_helpers import running, wait_for

SOLLAMA = str(Path(sys.executable).parent / "sollama")


def _env(isolated: Path) -> dict[str, str]:
    return {**os.environ, "SOLLAMA_HOME": str(isolated), "NO_COLOR": "1"}


def _terminate(proc: subprocess.Popen, timeout: float = 30) -> tuple[str, str]:  # type: ignore[type-arg]
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=timeout)


def test_sigterm_ends_a_bench_like_ctrl_c_and_keeps_its_run(stub, isolated):
    stub.configure(tokens=4, token_delay=0.02)
    db = isolated / "data" / "history.sqlite3"

    def stored_rows() -> int:
        if not db.exists():
            return 0
        with Store(db) as store:
            runs = store.runs()
            return len(store.requests(runs[-1].id)) if runs else 0

    with running([SOLLAMA, "--host", stub.host, "bench", "-m", "stub-model", "-c", "2", "-n", "10000", "--warmup",
                  "0"], env=_env(isolated), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert wait_for(lambda: stored_rows() > 0, 30, 0.2), "the bench wrote no request"
        out, err = _terminate(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    with Store(db) as store:
        run = store.runs()[-1]
        assert run.status == "interrupted" and len(store.requests(run.id)) > 0
        assert run.summary is not None and run.summary["requests_ok"] == len(store.requests(run.id))
    assert "requests" in out


def test_sigterm_ends_generate_with_a_message_and_its_usage_row(stub, isolated):
    stub.configure(tokens=2000, token_delay=0.02)
    with running([SOLLAMA, "--host", stub.host, "generate", "-m", "stub-model", "tell me a long story"],
                 env=_env(isolated), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert wait_for(lambda: any("generate" in str(r) for r in stub.requests), 30, 0.1)
        out, err = _terminate(proc)
    assert proc.returncode == 130, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    with Store(isolated / "data" / "history.sqlite3") as store:
        (row,) = store.usage_rows()
    assert row.command == "generate" and row.outcome == "interrupted"


def test_sigterm_while_sigint_is_ignored_still_ends_the_command(stub, isolated):
    """A background job of a non-interactive shell ignores SIGINT; SIGTERM must still end it cleanly."""
    stub.configure(tokens=2000, token_delay=0.02)
    with running([SOLLAMA, "--host", stub.host, "generate", "-m", "stub-model", "story"], env=_env(isolated),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) as proc:
        assert wait_for(lambda: any("generate" in str(r) for r in stub.requests), 30, 0.1)
        out, err = _terminate(proc)
    assert proc.returncode == 130, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
