"""Start `tests/stub_ollama.py` as a separate process for the benchmark scripts (not a test)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def stub_process(*args: str, cpu: int | None = None) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The stub on a free loopback port, optionally pinned to `cpu`; yields (process, port); stops it by its PID."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "stub_ollama.py"), "--port", "0", *args],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"stub did not start: {line!r}")
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(proc.pid, {cpu})
        yield proc, int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pin_self(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def cpus() -> tuple[int, int]:
    """(client core, stub core): two different cores when there are two."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    return allowed[0], allowed[-1]
