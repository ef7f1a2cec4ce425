"""`stop`/`restart`/`status` act on the daemon at the address asked for, and only there (a fake daemon that
answers like Ollama; the real daemon: test_ops_real.py)."""

from __future__ import annotations

import json
import sys

import psutil
import pytest

from ollama_ops.edges import process as pf
from tests.lifecycle_helpers import fake_binary, free_host, nothing_listens, stop_our_daemon, wait_for
from tests.test_lifecycle import FAKE_OLLAMA


@pytest.fixture(autouse=True)
def _teardown():
    yield
    stop_our_daemon()


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fakeollama.py"
    script.write_text(FAKE_OLLAMA)
    return fake_binary(tmp_path / "bin", f'exec {sys.executable} {script} "$@"')


def _alive(pid: int) -> bool:
    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_stop_and_restart_with_another_host_leave_the_managed_daemon_alone(sollama, fake):
    managed, other = free_host(), free_host()
    started = sollama("--host", managed, "start", "--binary", str(fake), "--json")
    assert started.exit_code == 0, started.output
    pid = json.loads(started.stdout)["pid"]

    for args, env in ((["stop", "--host", other], None), (["--host", other, "stop"], None),
                      (["stop"], {"OLLAMA_HOST": other}), (["stop", "--json"], {"SOLLAMA_SERVER_HOST": other})):
        result = sollama(*args, env=env)
        assert result.exit_code == 0, result.output
        assert "left it alone" in result.stderr and managed in result.stderr, result.output
        assert _alive(pid) and pf.verify(pf.read_pidfile()) is not None
        if "--json" in args:
            assert json.loads(result.stdout)["status"] == "not-running"

    restarted = sollama("restart", "--host", other, "--binary", str(fake))
    assert restarted.exit_code == 1, restarted.output
    assert f"already runs at http://{managed}" in restarted.stderr
    assert _alive(pid) and nothing_listens(other)

    stopped = sollama("stop", "--host", managed, "--json")
    assert stopped.exit_code == 0, stopped.output
    assert json.loads(stopped.stdout)["status"] == "stopped" and json.loads(stopped.stdout)["pid"] == pid
    assert wait_for(lambda: not _alive(pid), 10)


def test_stop_without_an_address_stops_the_managed_daemon_wherever_it_runs(sollama, fake):
    managed = free_host()
    assert sollama("--host", managed, "start", "--binary", str(fake)).exit_code == 0
    pid = pf.read_pidfile().pid
    result = sollama("stop", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"waited_s": 0} == json.loads(result.stdout) | {
        "status": "stopped", "pid": pid, "waited_s": 0}
    assert wait_for(lambda: not _alive(pid), 10)


def test_restart_at_the_managed_address_replaces_the_daemon(sollama, fake):
    managed = free_host()
    assert sollama("--host", managed, "start", "--binary", str(fake)).exit_code == 0
    old = pf.read_pidfile().pid
    result = sollama("restart", "--host", managed, "--binary", str(fake), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stop"]["status"] == "stopped" and data["stop"]["pid"] == old
    assert data["start"]["status"] == "started" and data["start"]["pid"] != old
    assert pf.verify(pf.read_pidfile()).pid == data["start"]["pid"]


def test_status_of_another_address_does_not_show_the_managed_daemons_log_or_pid(sollama, fake):
    managed, other = free_host(), free_host()
    assert sollama("--host", managed, "start", "--binary", str(fake)).exit_code == 0
    pid = pf.read_pidfile().pid
    with open(pf.log_path(), "a") as fh:
        fh.write('time=x level=ERROR msg="managed daemon trouble"\n')

    mine = sollama("--host", managed, "status", "--json")
    assert mine.exit_code == 7, mine.output  # the fake has no /api/ps: degraded, but the facts are there
    data = json.loads(mine.stdout)
    assert data["process"]["pid"] == pid and data["process"]["source"] == "pidfile"
    assert str(pf.log_path()) in data["log"]["files"] and any("managed daemon trouble" in e
                                                               for e in data["log"]["errors"])

    elsewhere = sollama("--host", other, "status", "--json")
    assert elsewhere.exit_code == 4, elsewhere.output
    data = json.loads(elsewhere.stdout)
    assert data["process"] is None and data["log"] == {"files": [], "errors": []}
    assert "holds the port" not in elsewhere.stderr and str(pid) not in elsewhere.stderr


def test_status_says_a_pid_holds_the_port_only_when_it_does(sollama):
    """The daemon sollama started runs (verified record) but listens nowhere: unreachable, and the message does
    not claim that it holds the port."""
    import subprocess

    from tests.lifecycle_helpers import end, write_pidfile_text

    host = free_host()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "serve"])
    try:
        assert wait_for(lambda: psutil.Process(proc.pid).cmdline()[-1:] == ["serve"], 5)
        p = psutil.Process(proc.pid)
        write_pidfile_text(json.dumps({"pid": proc.pid, "create_time": p.create_time(), "cmdline": p.cmdline(),
                                       "host": host, "base_url": f"http://{host}", "log": "", "binary": "",
                                       "started_at": "", "started_by": "test"}))
        result = sollama("--host", host, "status", "--json")
        assert result.exit_code == 4, result.output
        data = json.loads(result.stdout)
        assert data["process"]["pid"] == proc.pid and data["process"]["holds_port"] is False
        assert "holds the port" not in result.stderr
        assert f"pid {proc.pid}) runs but does not listen" in result.stderr
    finally:
        end(proc)
