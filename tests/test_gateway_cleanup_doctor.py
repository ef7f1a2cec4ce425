"""`sollama cleanup --stop` and `sollama doctor` cover the managed gateway's pid record (`gateway.json`): cleanup
stops a verified gateway (before the daemon) and never signals a process a stale record names; doctor reports the
record as absent, running and verified (with its address), or stale.

The gateway here is the real `sollama serve`, started detached through the lifecycle service that `start
--gateway` uses, in front of the stub (no daemon needed); teardown stops only what our verified record names."""

from __future__ import annotations

import json
import sys

import psutil
import pytest

from ollama_ops.config import load_settings
from ollama_ops.core.health import PASS, WARN
from ollama_ops.edges import process as pf
from ollama_ops.services import gateway_lifecycle as gl
from ollama_ops.services.cleanup import plan_cleanup, run_cleanup
from tests.conftest import free_port
from tests.lifecycle_helpers import end, spawn_sleep
from tests.stub_ollama import StubOllama


@pytest.fixture
def stub(monkeypatch, isolated):
    """The stub as the gateway's upstream; teardown stops the gateway our own record names, only if it verifies."""
    monkeypatch.setenv("SOLLAMA_GATEWAY_DRAIN_TIMEOUT", "2")
    with StubOllama(models=("m:1",)) as upstream:
        monkeypatch.setenv("SOLLAMA_GATEWAY_UPSTREAM", upstream.url)
        try:
            yield upstream
        finally:
            record = pf.read_pidfile(gl.pidfile_path())
            proc = pf.verify(record, accepts=gl.is_gateway_cmdline)
            if proc is not None:
                pf.ServerProcess(proc).stop(10.0)
            pf.remove_pidfile(gl.pidfile_path())


def _start_gateway() -> tuple[pf.PidRecord, str]:
    port = free_port()
    started = gl.start_gateway(gl.plan_gateway(load_settings(None), listen=f"127.0.0.1:{port}"), timeout=60)
    assert started.status == "started"
    record = pf.read_pidfile(gl.pidfile_path())
    assert record is not None and record.pid == started.pid
    return record, f"http://127.0.0.1:{port}"


def _stale_record(sleeper) -> None:  # type: ignore[no-untyped-def]
    """A gateway record naming a live process of this test that is no gateway (its own pid, creation time and
    command line)."""
    p = psutil.Process(sleeper.pid)
    gl.pidfile_path().parent.mkdir(parents=True, exist_ok=True)
    gl.pidfile_path().write_text(json.dumps({
        "pid": sleeper.pid, "create_time": p.create_time(), "cmdline": p.cmdline(), "host": "127.0.0.1:1",
        "base_url": "http://127.0.0.1:1", "binary": "", "started_at": "", "log": "", "started_by": "test"}))


def _gone(record: pf.PidRecord) -> bool:
    try:
        p = psutil.Process(record.pid)
        return abs(p.create_time() - record.create_time) > 0.01 or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _doctor(sollama) -> dict:  # type: ignore[no-untyped-def]
    result = sollama("--host", f"127.0.0.1:{free_port()}", "doctor", "--json")
    assert result.exit_code in (0, 1), result.output  # other checks of this machine may fail
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}["gateway"]


def _cleanup(sollama, *args: str) -> dict:  # type: ignore[no-untyped-def]
    result = sollama("--host", f"127.0.0.1:{free_port()}", "cleanup", "--no-orphans", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- doctor -----------------------------------------------------------------------------------------------------

def test_doctor_without_a_gateway_passes(sollama):
    check = _doctor(sollama)
    assert check["status"] == PASS and check["detail"] == "none (no gateway started by sollama)"


def test_doctor_reports_the_running_gateway_with_its_address(sollama, stub):
    record, url = _start_gateway()
    check = _doctor(sollama)
    assert check["status"] == PASS, check
    assert check["detail"] == f"started by sollama (pid {record.pid}, verified) at {url}, ready"


def test_doctor_reports_a_stale_record_and_signals_nothing(sollama):
    sleeper = spawn_sleep()
    try:
        _stale_record(sleeper)
        check = _doctor(sollama)
        assert check["status"] == WARN and check["detail"].startswith("stale pid record: "), check
        assert f"pid {sleeper.pid}" in check["detail"] and "nothing is signalled" in check["fix"]
        assert gl.pidfile_path().exists()  # doctor only looks
        assert sleeper.poll() is None
    finally:
        end(sleeper)


# -- cleanup --stop ---------------------------------------------------------------------------------------------

def test_cleanup_stop_stops_the_verified_gateway_first(sollama, stub):
    record, url = _start_gateway()
    dry = _cleanup(sollama, "--stop", "--dry-run")
    steps = [s["name"] for s in dry["plan"]["steps"]]
    assert steps.index("stop-gateway") < steps.index("stop")  # the gateway drains before the daemon goes
    planned = next(s for s in dry["plan"]["steps"] if s["name"] == "stop-gateway")
    assert planned["skipped"] is None and planned["targets"] == [f"sollama serve (pid {record.pid}) at {url}"]
    assert planned["bytes"] > 0 and not _gone(record)  # --dry-run stops nothing

    done = _cleanup(sollama, "--stop", "--yes")
    outcome = next(o for o in done["report"]["outcomes"] if o["name"] == "stop-gateway")
    assert outcome["ok"] and outcome["count"] == 1
    assert outcome["freed"].startswith(f"stopped the gateway, pid {record.pid} (sigterm)"), outcome
    assert _gone(record) and not gl.pidfile_path().exists()
    skipped = next(s for s in _cleanup(sollama, "--stop", "--dry-run")["plan"]["steps"] if s["name"] == "stop-gateway")
    assert skipped["skipped"] == "no gateway started by sollama is running"


def test_cleanup_without_stop_leaves_the_gateway_running(sollama, stub):
    record, _ = _start_gateway()
    step = next(s for s in _cleanup(sollama, "--yes")["plan"]["steps"] if s["name"] == "stop-gateway")
    assert step["skipped"] == "not asked (--stop)"
    assert not _gone(record) and gl.pidfile_path().exists()


def test_cleanup_stop_never_signals_what_a_stale_record_names(sollama):
    sleeper = spawn_sleep()
    try:
        _stale_record(sleeper)
        done = _cleanup(sollama, "--stop", "--yes")
        steps = {s["name"]: s for s in done["plan"]["steps"]}
        assert steps["stop-gateway"]["skipped"] == "no gateway started by sollama is running"
        assert steps["stale-files"]["targets"] == [f"{gl.pidfile_path()} (pid {sleeper.pid} now belongs to another "
                                                   f"process: {pf.describe_pid(sleeper.pid)})"]
        assert "stop-gateway" not in {o["name"] for o in done["report"]["outcomes"]}
        assert not gl.pidfile_path().exists()  # removed as a stale file
        assert sleeper.poll() is None and psutil.Process(sleeper.pid).status() != psutil.STATUS_ZOMBIE
    finally:
        end(sleeper)


def test_a_gateway_started_after_the_plan_is_left_running(stub):
    first, _ = _start_gateway()
    plan = plan_cleanup(load_settings(None), stop=True, orphans=False)
    assert gl.stop_gateway(load_settings(None)).status == "stopped"
    second, _ = _start_gateway()  # another gateway since the plan: not the one the plan saw
    report = run_cleanup(load_settings(None), plan, timeout=10)
    outcome = next(o for o in report.outcomes if o.name == "stop-gateway")
    assert outcome.ok and outcome.count == 0
    assert f"the gateway changed since the plan (now pid {second.pid}); left it running" in outcome.freed
    assert _gone(first) and not _gone(second) and pf.read_pidfile(gl.pidfile_path()).pid == second.pid


def test_the_gateway_record_is_never_taken_from_a_python_that_is_not_sollama(sollama):
    """A record whose command line claims a gateway that the process does not run is stale for both commands."""
    sleeper = spawn_sleep()
    try:
        _stale_record(sleeper)
        data = json.loads(gl.pidfile_path().read_text())
        data["cmdline"] = [sys.executable, "-m", "ollama_ops", "serve"]
        gl.pidfile_path().write_text(json.dumps(data))
        assert _doctor(sollama)["status"] == WARN
        _cleanup(sollama, "--stop", "--yes")
        assert sleeper.poll() is None and not gl.pidfile_path().exists()
    finally:
        end(sleeper)
