"""Shared pieces of the tests that run processes: fake binaries, unrelated processes, a command run and
interrupted by its own PID, and a teardown that stops only the daemon our own pid file names (verified by pid,
creation time and command line)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from ollama_ops.edges import process as pf
from tests import conftest


def fake_binary(directory: Path, body: str, name: str = "ollama") -> Path:
    """An executable shell script standing in for `ollama`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def spawn_sleep(seconds: int = 30) -> subprocess.Popen[bytes]:
    """An unrelated live process for a stale pid file to point at."""
    proc = subprocess.Popen(["sleep", str(seconds)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # until exec has happened, /proc shows the forking Python (or nothing)
    wait_for(lambda: psutil.Process(proc.pid).cmdline() == ["sleep", str(seconds)], 5, 0.01)
    return proc


def end(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process this test started, by its own Popen handle."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)


@contextlib.contextmanager
def running(argv: list[str], **popen: object) -> Iterator[subprocess.Popen]:  # type: ignore[type-arg]
    """A process this test starts (Popen arguments as given); SIGKILLed by its own PID on the way out if it is
    still running."""
    proc = subprocess.Popen(argv, **popen)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        end(proc)


def interrupt(proc: subprocess.Popen, timeout: float) -> tuple:  # type: ignore[type-arg]
    """Ctrl-C for the PID this test started: SIGINT, then its (stdout, stderr) once it exits."""
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=timeout)


def stop_our_daemon() -> None:
    """Teardown: stop the daemon our pid file names, only if it verifies, then forget the pid file."""
    proc = pf.verify(pf.read_pidfile())
    if proc is not None:
        pf.ServerProcess(proc).stop(10.0)
    pf.remove_pidfile()


def write_pidfile_text(text: str) -> Path:
    path = pf.pidfile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def foreign_record(pid: int) -> str:
    """A well-formed pid record naming `pid` but with another process's creation time and command line."""
    return json.dumps({"pid": pid, "create_time": psutil.Process(pid).create_time() - 100.0,
                       "cmdline": ["/usr/bin/ollama", "serve"], "host": "127.0.0.1:1", "base_url": "http://x",
                       "binary": "/usr/bin/ollama", "started_at": "2020-01-01T00:00:00+00:00", "log": "",
                       "started_by": "test"})


def free_host() -> str:
    return f"127.0.0.1:{conftest.free_port()}"


def nothing_listens(host: str) -> bool:
    addr, port = host.rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((addr, int(port))) != 0


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def real_daemon_env(monkeypatch, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """Environment for `sollama start` to run the real binary on a free loopback port with the shared models
    cache (no pruning: other test sessions may be importing into it) and its own HOME."""
    binary = conftest.ollama_binary()
    if binary is None:
        conftest._missing("no ollama binary: run scripts/install-ollama.sh or set SOLLAMA_OLLAMA_BIN")
    host = free_host()
    home = tmp_path / "ollama-home"
    home.mkdir()
    monkeypatch.setenv("SOLLAMA_OLLAMA_BIN", str(binary))
    monkeypatch.setenv("SOLLAMA_SERVER_MODELS_DIR", str(conftest.TOOLS / "test-ollama-models"))
    monkeypatch.setenv("SOLLAMA_SERVER_EXTRA_ENV", '{"OLLAMA_NOPRUNE": "1"}')
    monkeypatch.setenv("SOLLAMA_SERVER_HOST", host)
    monkeypatch.setenv("HOME", str(home))
    for var in [v for v in os.environ if v.startswith("OLLAMA_")]:
        monkeypatch.delenv(var)
    return host


def real_daemon_host(monkeypatch, tmp_path: Path, request) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Body of the `host` fixtures of the real-daemon lifecycle tests: an isolated address for `sollama start`;
    afterwards the daemon's log on failure, and our daemon stopped (by its verified PID)."""
    import sys

    address = real_daemon_env(monkeypatch, tmp_path)
    yield address
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and pf.log_path().exists():
        sys.stderr.write(f"\n--- daemon log {pf.log_path()} ---\n{pf.log_path().read_text(errors='replace')[-3000:]}\n")
    stop_our_daemon()
