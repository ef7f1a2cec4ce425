"""`sollama start/stop/logs` against the real `ollama serve`, each test with its own daemon on a free port
(started by `sollama start`, always stopped by its verified pid in teardown)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from ollama_ops.edges import process as pf
from tests.lifecycle_helpers import (
    end,
    foreign_record,
    nothing_listens,
    real_daemon_host,
    spawn_sleep,
    write_pidfile_text,
)

pytestmark = pytest.mark.ollama
SOLLAMA = str(Path(sys.executable).with_name("sollama"))


@pytest.fixture
def host(monkeypatch, tmp_path, request):
    yield from real_daemon_host(monkeypatch, tmp_path, request)


def _serve_processes_on(host: str) -> list[int]:
    """`ollama serve` processes whose OLLAMA_HOST is this address (there must be one at most)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if len(cmd) >= 2 and cmd[1] == "serve" and os.path.basename(cmd[0]) == "ollama":
            try:
                if proc.environ().get("OLLAMA_HOST", "").endswith(host):
                    found.append(proc.pid)
            except psutil.Error:
                continue
    return found


def _run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SOLLAMA, *args], capture_output=True, text=True, timeout=timeout)


def test_start_status_already_running_stop(sollama, host):
    sleeper = spawn_sleep()
    try:
        write_pidfile_text(foreign_record(sleeper.pid))  # a stale record from some earlier life
        started = _run("start", "--json")  # the real entry point, once
        assert started.returncode == 0, started.stderr
        data = json.loads(started.stdout)
        assert data["status"] == "started" and data["address"] == f"http://{host}"
        assert data["version"] and data["log"] == str(pf.log_path()) and data["memory_budget"] > 0
        assert "removed a stale pid file" in started.stderr and sleeper.poll() is None

        record = pf.read_pidfile()
        assert record.pid == data["pid"] and pf.verify(record) is not None
        assert record.host == host and record.started_by.startswith("sollama ")
        assert _serve_processes_on(host) == [record.pid]

        if importlib.util.find_spec("ollama_ops.cli.status") is not None:
            status = sollama("status", "--json")
            assert status.exit_code == 0, status.output
        else:
            assert httpx.get(f"http://{host}/", timeout=5).text == "Ollama is running"

        again = sollama("start")
        assert again.exit_code == 0, again.output
        assert "already running" in again.stdout and str(record.pid) in again.stdout
        assert _serve_processes_on(host) == [record.pid]

        stopped = sollama("stop", "--json")
        assert stopped.exit_code == 0, stopped.output
        assert json.loads(stopped.stdout)["status"] == "stopped"
        assert nothing_listens(host) and not pf.pidfile_path().exists()
        assert not psutil.pid_exists(record.pid) or psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE
        assert sleeper.poll() is None  # never signalled
        if importlib.util.find_spec("ollama_ops.cli.status") is not None:
            assert sollama("status").exit_code == 4
    finally:
        end(sleeper)


def test_ten_concurrent_starts_give_exactly_one_daemon(host):
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: _run("start", "--json", timeout=120), range(10)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    docs = [json.loads(r.stdout) for r in results]
    assert sorted(d["status"] for d in docs) == ["already-running"] * 9 + ["started"]
    assert len({d["pid"] for d in docs}) == 1
    assert _serve_processes_on(host) == [docs[0]["pid"]]


def test_daemon_that_cannot_bind_dies_at_start_with_its_log(sollama, host):
    addr, port = host.rsplit(":", 1)
    with socket.socket() as blocker:
        blocker.bind((addr, int(port)))  # bound, not listening: nothing answers, but the port is taken
        result = sollama("start", "--timeout", "30")
    assert result.exit_code == 1, result.output
    assert "while starting" in result.stderr and "address already in use" in result.stderr
    assert not pf.pidfile_path().exists() and _serve_processes_on(host) == []


def test_logs_follow_ctrl_c_exits_130_quietly_and_ends_when_the_daemon_stops(sollama, host):
    assert sollama("start").exit_code == 0
    interrupted = subprocess.Popen([SOLLAMA, "logs", "-f", "-n", "1"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    ending = subprocess.Popen([SOLLAMA, "logs", "-f", "-n", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert interrupted.stdout.readline()  # the last line arrived: it is following now
        time.sleep(0.5)
        interrupted.send_signal(signal.SIGINT)
        out, err = interrupted.communicate(timeout=10)
        assert interrupted.returncode == 130 and err == "", err
        httpx.get(f"http://{host}/api/version", timeout=5)  # a line for the follower to see
        time.sleep(1.5)
        assert sollama("stop").exit_code == 0
        out, err = ending.communicate(timeout=15)  # ends by itself once the daemon is gone
        assert ending.returncode == 0, err
        assert "/api/version" in out
    finally:
        for proc in (interrupted, ending):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)


def test_restart_replaces_the_daemon(sollama, host):
    assert sollama("start").exit_code == 0
    first = pf.read_pidfile().pid
    result = sollama("restart", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stop"]["status"] == "stopped" and data["stop"]["pid"] == first
    assert data["start"]["status"] == "started" and data["start"]["pid"] != first
    assert pf.verify(pf.read_pidfile()).pid == data["start"]["pid"]
    assert _serve_processes_on(host) == [data["start"]["pid"]]
