"""`gateway.workers` and `--workers` beyond `sollama serve`: the config key (validated with line and column), the
flag over the key, `sollama start --gateway --workers N` (the managed gateway runs with them; refused without
shared state before anything starts) and `sollama service unit --gateway --workers N`.

The managed-gateway test starts the real `sollama serve` detached through the lifecycle service (the one
`start --gateway` calls) in front of the stub, with a real Redis, and stops it through the real `sollama stop`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psutil
import pytest

from ollama_ops.config import load_settings
from ollama_ops.edges import process as pf
from ollama_ops.gateway.accesslog import log_path
from ollama_ops.services import gateway_lifecycle as gl
from tests.conftest import free_port
from tests.fleet_helpers import generate, run_parallel
from tests.gateway_helpers import gateway
from tests.lifecycle_helpers import wait_for
from tests.stub_ollama import StubOllama


def _workers_of(pid: int) -> list[int]:
    """The worker processes of the `sollama serve` at `pid` (not multiprocessing's resource tracker)."""
    return [p.pid for p in psutil.Process(pid).children() if "spawn_main" in " ".join(p.cmdline())]


@pytest.mark.parametrize("value, message", [
    ("0", "2:12: gateway.workers must be >= 1, got 0"),
    ("65", "2:12: gateway.workers must be <= 64, got 65"),
    ("true", "2:12: gateway.workers must be integer, got True"),
    (".nan", "2:12: gateway.workers must be integer, got nan"),
    ("'2'", "2:12: gateway.workers must be integer, got '2'"),
    ("1.5", "2:12: gateway.workers must be integer, got 1.5"),
])
def test_bad_gateway_workers_is_exit_3_naming_line_and_column(sollama, tmp_path, value, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"gateway:\n  workers: {value}\n")
    for command in (("config", "show"), ("serve",)):
        result = sollama("--config", str(cfg), *command)
        assert result.exit_code == 3, result.output
        assert result.stderr.strip() == f"error: {cfg}:{message}" and result.stdout == ""


def test_configured_workers_without_shared_state_are_a_config_error(sollama, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("gateway:\n  workers: 2\n")
    for command in (("serve",), ("start", "--gateway")):
        result = sollama("--config", str(cfg), *command)
        assert result.exit_code == 3, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: gateway.workers (2) above 1 needs shared state "
                                                       "(gateway.state: redis://…)"), lines
    assert not pf.pidfile_path().exists() and not gl.pidfile_path().exists()
    # the flag wins over the key: one worker needs no shared state (refused here only by its address)
    result = sollama("--config", str(cfg), "serve", "--workers", "1", "--listen", "127.0.0.1:99999")
    assert result.exit_code == 3 and "port must be 1-65535" in result.stderr, result.output


@pytest.mark.parametrize("args, text", [
    (["start", "--gateway", "--workers", "2"], "error: --workers above 1 needs shared state (gateway.state: "),
    (["start", "--workers", "2"], "error: --workers is the gateway's: it goes with --gateway"),
    (["restart", "--workers", "2"], "error: --workers is the gateway's: it goes with --gateway"),
    (["start", "--gateway", "--workers", "65"], "must be at most 64"),
    (["service", "unit", "--gateway", "--workers", "2"], "error: --workers above 1 needs shared state"),
    (["service", "unit", "--workers", "2"], "error: --workers is the gateway's: it goes with --gateway"),
])
def test_workers_flag_refusals_are_exit_2_before_anything_starts(sollama, args, text):
    result = sollama(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], lines
    assert result.stdout == ""
    assert not pf.pidfile_path().exists() and not gl.pidfile_path().exists()  # no daemon, no gateway


def test_gateway_unit_carries_workers_and_signals_only_the_supervisor(sollama, monkeypatch):
    monkeypatch.setenv("SOLLAMA_GATEWAY_STATE", "redis://127.0.0.1:6379/0")
    result = sollama("service", "unit", "--gateway", "--workers", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert next(ln for ln in lines if ln.startswith("ExecStart=")).endswith(" serve --workers 3")
    assert "KillMode=mixed" in lines  # SIGTERM to the supervisor only; it forwards one to each worker
    plain = sollama("service", "unit", "--gateway")
    assert plain.exit_code == 0 and next(ln for ln in plain.stdout.splitlines()
                                         if ln.startswith("ExecStart=")).endswith(" serve")


@pytest.mark.parametrize("cmdline, workers", [
    (["/py", "-m", "ollama_ops", "serve", "--listen", "127.0.0.1:8000", "--workers", "4"], 4),
    (["/py", "-m", "ollama_ops", "serve", "--listen", "127.0.0.1:8000"], None),
    (["/py", "-m", "ollama_ops", "serve", "--workers"], None),
])
def test_workers_of_a_gateway_command_line(cmdline, workers):
    assert gl.workers_of(cmdline) == workers


def test_configured_workers_run_and_the_flag_overrides_them(isolated, redis_url):
    with StubOllama(models=("m:1",)) as stub:
        with gateway(stub.url, isolated, state=redis_url, workers=2) as gw:
            assert wait_for(lambda: "sollama gateway on" in gw.output(), 60, 0.05), gw.output()
            assert len(_workers_of(gw.proc.pid)) == 2 and "2 workers" in gw.output()
        with gateway(stub.url, isolated, "--workers", "1", state=redis_url, workers=2) as gw:
            assert wait_for(lambda: "sollama gateway on" in gw.output(), 60, 0.05), gw.output()
            assert _workers_of(gw.proc.pid) == [] and "workers" not in gw.output()
            assert run_parallel([lambda: generate(gw.url, "m:1").status_code for _ in range(4)]) == [200] * 4
            gw.stop()
        served = {e["pid"] for e in gw.access_log() if e["route"] == "/api/generate"}
    assert served == {gw.proc.pid}  # one process answered everything


@pytest.fixture
def managed(monkeypatch, isolated: Path):
    """Teardown: stop the gateway our own record names, only if it verifies."""
    monkeypatch.setenv("SOLLAMA_GATEWAY_DRAIN_TIMEOUT", "2")
    yield
    record = pf.read_pidfile(gl.pidfile_path())
    proc = pf.verify(record, accepts=gl.is_gateway_cmdline)
    if proc is not None:
        pf.ServerProcess(proc).stop(10.0)
    pf.remove_pidfile(gl.pidfile_path())


def test_start_gateway_with_two_workers_runs_them_and_stop_ends_all(sollama, managed, monkeypatch, redis_url):
    port = free_port()
    monkeypatch.setenv("SOLLAMA_GATEWAY_STATE", redis_url)
    with StubOllama(models=("m:1",)) as stub:
        monkeypatch.setenv("SOLLAMA_GATEWAY_UPSTREAM", stub.url)
        plan = gl.plan_gateway(load_settings(None), listen=f"127.0.0.1:{port}", workers=2)
        assert plan.workers == 2 and plan.command[plan.command.index("--workers") + 1] == "2"
        started = gl.start_gateway(plan, timeout=60)
        assert started.status == "started"
        record = pf.read_pidfile(gl.pidfile_path())
        assert record.pid == started.pid and gl.workers_of(record.cmdline) == 2
        assert gl.running_workers() == 2 and gl.running_listen() == f"127.0.0.1:{port}"
        workers = _workers_of(record.pid)
        assert len(workers) == 2
        url = f"http://127.0.0.1:{port}"
        assert run_parallel([lambda: generate(url, "m:1").status_code for _ in range(20)]) == [200] * 20

        stopped = sollama("stop", "--json")
        assert stopped.exit_code == 0, stopped.output
        result = json.loads(stopped.stdout)["gateway"]
        assert result["status"] == "stopped" and result["pid"] == record.pid and result["how"] == "sigterm"
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
               for p in [record.pid, *workers])
    entries = [json.loads(line) for line in log_path().read_text().splitlines() if line.strip()]
    pids = {e["pid"] for e in entries if e["route"] == "/api/generate"}
    assert pids == set(workers)  # both workers answered
    assert not gl.pidfile_path().exists()


@pytest.mark.ollama
def test_start_gateway_workers_on_the_real_daemon_and_restart_keeps_them(sollama, managed, monkeypatch, tmp_path,
                                                                         request, redis_url):
    """The real CLI: `start --gateway --workers 2` in front of the real daemon, `restart` keeps two workers,
    `stop` ends the gateway, its workers and the daemon."""
    from tests.lifecycle_helpers import real_daemon_host

    daemon = real_daemon_host(monkeypatch, tmp_path, request)
    host = next(daemon)
    try:
        monkeypatch.setenv("SOLLAMA_GATEWAY_STATE", redis_url)
        port = free_port()
        started = sollama("start", "--gateway", "--workers", "2", "--listen", f"127.0.0.1:{port}", "--json")
        assert started.exit_code == 0, started.output
        first = json.loads(started.stdout)["gateway"]
        assert first["status"] == "started" and first["command"][-4:] == ["--workers", "2", "--upstream",
                                                                          f"http://{host}"]
        assert len(_workers_of(first["pid"])) == 2
        through = httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=10)
        assert through.status_code == 200 and "version" in through.json()

        restarted = sollama("restart", "--json")
        assert restarted.exit_code == 0, restarted.output
        second = json.loads(restarted.stdout)["start"]["gateway"]
        assert second["status"] == "started" and second["pid"] != first["pid"]
        assert gl.workers_of(second["command"]) == 2 and len(_workers_of(second["pid"])) == 2

        workers = _workers_of(second["pid"])
        stopped = sollama("stop", "--json")
        assert stopped.exit_code == 0, stopped.output
        result = json.loads(stopped.stdout)
        assert result["gateway"]["status"] == "stopped" and result["status"] == "stopped"
        assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
                   for p in [second["pid"], *workers])
    finally:
        next(daemon, None)


@pytest.mark.parametrize("drain, stop", [(None, 45), ("5", 30), ("120", 135), ("7.2", 30), ("40.5", 56)])
def test_gateway_unit_waits_for_the_drain_before_systemd_kills(sollama, monkeypatch, drain, stop):
    """systemd's SIGKILL (TimeoutStopSec) comes 15 s after gateway.drain_timeout (default 30 s), never before 30 s:
    a long drain is not cut short by the unit, and the daemon's and watchdog's units keep 30 s."""
    if drain is not None:
        monkeypatch.setenv("SOLLAMA_GATEWAY_DRAIN_TIMEOUT", drain)
    gateway = sollama("service", "unit", "--gateway")
    assert gateway.exit_code == 0, gateway.output
    assert f"TimeoutStopSec={stop}" in gateway.stdout.splitlines()
    daemon = sollama("service", "unit")
    assert "TimeoutStopSec=30" in daemon.stdout.splitlines()
