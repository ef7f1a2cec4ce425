"""`sollama start --gateway` / `stop` / `restart` / `status`: the gateway (`sollama serve`) as a second managed
process beside the real `ollama serve`, under the same verified-PID rules (its own record `gateway.json`).

The real-daemon tests start both with the real entry point and stop them through `sollama stop`; teardown stops
whatever our own verified records still name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from ollama_ops.edges import process as pf
from ollama_ops.services import gateway_lifecycle as gl
from tests.conftest import free_port
from tests.lifecycle_helpers import end, nothing_listens, real_daemon_host, spawn_sleep, wait_for

SOLLAMA = str(Path(sys.executable).with_name("sollama"))


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SOLLAMA, *args], capture_output=True, text=True, timeout=timeout)


def _stop_our_gateway() -> None:
    """Teardown: stop the gateway our record names, only if it verifies."""
    record = pf.read_pidfile(gl.pidfile_path())
    proc = pf.verify(record, accepts=gl.is_gateway_cmdline)
    if proc is not None:
        pf.ServerProcess(proc).stop(10.0)
    pf.remove_pidfile(gl.pidfile_path())


@pytest.fixture
def host(monkeypatch, tmp_path, request):
    monkeypatch.setenv("SOLLAMA_GATEWAY_DRAIN_TIMEOUT", "2")
    try:
        yield from real_daemon_host(monkeypatch, tmp_path, request)
    finally:
        log = gl.process_log_path()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and log.exists():
            sys.stderr.write(f"\n--- gateway log {log} ---\n{log.read_text(errors='replace')[-3000:]}\n")
        _stop_our_gateway()


def _record_of(proc: subprocess.Popen[bytes], cmdline: list[str] | None = None, **changes: object) -> str:
    """A gateway pid record naming a live process of this test (its real pid and creation time), with
    `cmdline` (default: its own) and any field changed."""
    p = psutil.Process(proc.pid)
    data = {"pid": proc.pid, "create_time": p.create_time(), "cmdline": cmdline or p.cmdline(),
            "host": "127.0.0.1:1", "base_url": "http://127.0.0.1:1", "binary": "", "started_at": "",
            "log": "", "started_by": "test", **changes}
    return json.dumps(data)


def _gone(pid: int, create_time: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - create_time) > 0.01 or \
            psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- without a daemon ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cmdline, ok", [
    (["/x/.venv/bin/python", "-m", "ollama_ops", "serve", "--listen", "127.0.0.1:8000"], True),
    (["/usr/local/bin/sollama", "serve"], True),
    (["/x/python", "-m", "ollama_ops", "--config", "/c.yaml", "serve"], True),
    (["/usr/bin/ollama", "serve"], False),  # the daemon is never taken for the gateway
    (["sleep", "30"], False),
    (["/usr/local/bin/sollama", "status"], False),
    (["/x/python", "-c", "print('serve')", "serve"], False),
])
def test_gateway_cmdline(cmdline, ok):
    assert gl.is_gateway_cmdline(cmdline) is ok


@pytest.mark.parametrize("kind", ["not-a-gateway", "wrong-create-time", "gateway-cmdline-of-another"])
def test_stale_gateway_record_is_removed_and_nothing_signalled(sollama, kind):
    """A record naming an unrelated live process (its own command line; a gateway's command line it does not run;
    another creation time) is stale: removed, reported, and the process keeps running."""
    sleeper = spawn_sleep()
    try:
        if kind == "not-a-gateway":
            text = _record_of(sleeper)  # pid, creation time and command line all match, but it is `sleep`
        elif kind == "wrong-create-time":
            text = _record_of(sleeper, [sys.executable, "-m", "ollama_ops", "serve"],
                              create_time=psutil.Process(sleeper.pid).create_time() - 100)
        else:
            text = _record_of(sleeper, [sys.executable, "-m", "ollama_ops", "serve"])
        gl.pidfile_path().parent.mkdir(parents=True, exist_ok=True)
        gl.pidfile_path().write_text(text)
        result = sollama("stop", "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["gateway"]["status"] == "stale" and data["gateway"]["pid"] == sleeper.pid
        assert data["status"] == "not-running"
        assert not gl.pidfile_path().exists()
        assert sleeper.poll() is None and psutil.Process(sleeper.pid).status() != psutil.STATUS_ZOMBIE
    finally:
        end(sleeper)


def test_cleanup_removes_a_stale_gateway_record_without_signalling(sollama):
    sleeper = spawn_sleep()
    try:
        gl.pidfile_path().parent.mkdir(parents=True, exist_ok=True)
        gl.pidfile_path().write_text(_record_of(sleeper))
        host = f"127.0.0.1:{free_port()}"
        result = sollama("--host", host, "cleanup", "--yes", "--no-orphans", "--json")
        assert result.exit_code == 0, result.output
        steps = {s["name"]: s for s in json.loads(result.stdout)["plan"]["steps"]}
        assert steps["stale-files"]["targets"] == [f"{gl.pidfile_path()} (pid {sleeper.pid} now belongs to another "
                                                   f"process: {pf.describe_pid(sleeper.pid)})"]
        assert not gl.pidfile_path().exists() and sleeper.poll() is None
    finally:
        end(sleeper)


def test_listen_needs_gateway_and_gateway_refuses_foreground(sollama):
    result = sollama("start", "--listen", "127.0.0.1:8000")
    assert result.exit_code == 2, result.output
    assert "--listen is the gateway's address" in result.stderr
    result = sollama("start", "--gateway", "--foreground")
    assert result.exit_code == 2, result.output
    assert "--gateway starts both detached" in result.stderr


def test_gateway_beyond_loopback_without_keys_is_refused_before_anything_starts(sollama):
    result = sollama("start", "--gateway", "--listen", f"0.0.0.0:{free_port()}")
    assert result.exit_code == 3, result.output
    assert not pf.pidfile_path().exists() and not gl.pidfile_path().exists()


# -- with the real daemon --------------------------------------------------------------------------------------

@pytest.mark.ollama
def test_start_gateway_both_answer_status_then_stop_both_by_pid(sollama, host):
    port = free_port()
    sleeper = spawn_sleep(120)
    try:
        gl.pidfile_path().parent.mkdir(parents=True, exist_ok=True)
        gl.pidfile_path().write_text(_record_of(sleeper))  # a stale gateway record from some earlier life
        started = _run("start", "--gateway", "--listen", f"127.0.0.1:{port}", "--json")
        assert started.returncode == 0, started.stderr
        data = json.loads(started.stdout)
        assert data["status"] == "started" and data["address"] == f"http://{host}"
        gw = data["gateway"]
        assert gw["status"] == "started" and gw["address"] == f"http://127.0.0.1:{port}"
        assert gw["log"] == str(gl.process_log_path())
        assert "removed a stale pid file" in started.stderr and sleeper.poll() is None

        daemon, gateway = pf.read_pidfile(), pf.read_pidfile(gl.pidfile_path())
        assert daemon.pid == data["pid"] and gateway.pid == gw["pid"] and daemon.pid != gateway.pid
        assert pf.verify(daemon) is not None
        assert pf.verify(gateway, accepts=gl.is_gateway_cmdline) is not None
        assert gateway.host == f"127.0.0.1:{port}" and "--upstream" in gateway.cmdline
        assert gateway.cmdline[gateway.cmdline.index("--upstream") + 1] == f"http://{host}"

        # both answer: Ollama directly, and through the gateway
        assert httpx.get(f"http://{host}/", timeout=5).text == "Ollama is running"
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["upstream"] == f"http://{host}"
        through = httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=10)
        assert through.status_code == 200 and through.json() == httpx.get(f"http://{host}/api/version").json()

        again = _run("start", "--gateway", "--listen", f"127.0.0.1:{port}", "--json")
        assert again.returncode == 0, again.stderr
        repeat = json.loads(again.stdout)["gateway"]
        assert repeat["status"] == "already-running" and repeat["pid"] == gateway.pid

        status = sollama("status", "--json")
        assert status.exit_code == 0, status.output
        section = json.loads(status.stdout)["gateway"]
        assert section["managed"] is True and section["pid"] == gateway.pid and section["running"] is True
        assert section["address"] == f"http://127.0.0.1:{port}" and section["uptime_s"] >= 0
        text = sollama("status")
        assert f"started by sollama (pid {gateway.pid})" in " ".join(text.stdout.split())  # the table wraps

        stopped = _run("stop", "--json")
        assert stopped.returncode == 0, stopped.stderr
        result = json.loads(stopped.stdout)
        assert result["gateway"]["status"] == "stopped" and result["gateway"]["pid"] == gateway.pid
        assert result["gateway"]["how"] == "sigterm"  # it drained and exited on SIGTERM
        assert result["status"] == "stopped" and result["pid"] == daemon.pid
        assert _gone(gateway.pid, gateway.create_time) and _gone(daemon.pid, daemon.create_time)
        assert nothing_listens(f"127.0.0.1:{port}") and nothing_listens(host)
        assert not gl.pidfile_path().exists() and not pf.pidfile_path().exists()
        assert sleeper.poll() is None  # the stale record's process was never signalled
    finally:
        end(sleeper)


@pytest.mark.ollama
def test_restart_restarts_the_gateway_on_its_address(sollama, host):
    port = free_port()
    started = _run("start", "--gateway", "--listen", f"127.0.0.1:{port}", "--json")
    assert started.returncode == 0, started.stderr
    first = json.loads(started.stdout)["gateway"]["pid"]
    restarted = sollama("restart", "--json")
    assert restarted.exit_code == 0, restarted.output
    data = json.loads(restarted.stdout)
    assert data["stop"]["gateway"]["status"] == "stopped" and data["stop"]["gateway"]["pid"] == first
    second = data["start"]["gateway"]
    assert second["status"] == "started" and second["pid"] != first
    assert second["address"] == f"http://127.0.0.1:{port}"
    assert pf.read_pidfile(gl.pidfile_path()).pid == second["pid"]
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    # without a gateway running, restart restarts the daemon only
    assert sollama("stop").exit_code == 0
    assert sollama("start").exit_code == 0
    alone = sollama("restart", "--json")
    assert alone.exit_code == 0, alone.output
    assert json.loads(alone.stdout)["start"]["gateway"] is None and not gl.pidfile_path().exists()


@pytest.mark.ollama
def test_gateway_whose_upstream_never_gets_ready_exits_5_and_is_stopped(sollama, host, monkeypatch):
    dead = free_port()
    monkeypatch.setenv("SOLLAMA_GATEWAY_UPSTREAM", f"127.0.0.1:{dead}")
    port = free_port()
    result = sollama("start", "--gateway", "--listen", f"127.0.0.1:{port}", "--timeout", "3")
    assert result.exit_code == 5, result.output
    assert f"answers /healthz, but /readyz says its upstream http://127.0.0.1:{dead} is not ready" in result.stderr
    assert "stopped it (pid" in result.stderr
    assert not gl.pidfile_path().exists()
    assert wait_for(lambda: nothing_listens(f"127.0.0.1:{port}"), 10)
    assert httpx.get(f"http://{host}/", timeout=5).status_code == 200  # the daemon it started stays up


@pytest.mark.ollama
def test_gateway_port_held_by_another_program_exits_1_naming_it(sollama, host):
    port = free_port()
    holder = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: not nothing_listens(f"127.0.0.1:{port}"), 10)
        result = sollama("start", "--gateway", "--listen", f"127.0.0.1:{port}")
        assert result.exit_code == 1, result.output
        assert f"port {port} is held by" in result.stderr and "which is not a sollama gateway" in result.stderr
        assert holder.poll() is None and not gl.pidfile_path().exists()
    finally:
        end(holder)
