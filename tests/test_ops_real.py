"""The process/data-safety fixes against the real `ollama serve` with SmolLM2: a daemon started through a
differently named link keeps its runner through cleanup; a runner whose daemon died is cleaned up; `start
--foreground` killed with SIGKILL leaves a daemon that keeps serving; stop/restart --host act only at that address;
`memory` what-ifs do not touch the saved plan. Every process is stopped by the PID this test started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from ollama_ops.config import load_settings
from ollama_ops.edges import process as pf
from ollama_ops.services import cleanup
from ollama_ops.services import memory as memory_service
from tests import conftest
from tests.lifecycle_helpers import free_host, nothing_listens, real_daemon_host, wait_for

pytestmark = pytest.mark.ollama

SOLLAMA = str(Path(sys.executable).parent / "sollama")


@pytest.fixture
def host(monkeypatch, tmp_path, request):
    yield from real_daemon_host(monkeypatch, tmp_path, request)


def _load(url: str) -> None:
    """Load SmolLM2 (its runner starts) and keep it loaded."""
    done = httpx.post(f"{url}/api/generate", json={"model": conftest.TEST_MODEL, "prompt": "Hi", "stream": False,
                                                    "keep_alive": "10m", "options": {"num_predict": 2}},
                      timeout=180)
    assert done.status_code == 200, done.text


def _runners_of(pid: int) -> list[psutil.Process]:
    out = []
    for child in psutil.Process(pid).children():
        try:
            if child.cmdline()[1:2] == ["runner"]:
                out.append(child)
        except psutil.Error:
            continue
    return out


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_daemon_started_through_a_differently_named_link_keeps_its_runner_and_an_orphan_is_cleaned(
        ollama_server, tmp_path, sollama):
    link = tmp_path / "bin" / "llm-daemon"
    link.parent.mkdir()
    link.symlink_to(ollama_server.binary)
    home = tmp_path / "home"
    proc, host = conftest.start_ollama(str(link), ollama_server.models_dir, home, tmp_path / "serve.log",
                                       extra_env={"OLLAMA_NOPRUNE": "1"})
    url = f"http://{host}"
    runners: list[psutil.Process] = []
    try:
        assert psutil.Process(proc.pid).cmdline()[0] == str(link)
        _load(url)
        assert wait_for(lambda: len(_runners_of(proc.pid)) == 1, 30)
        runners = _runners_of(proc.pid)
        (runner,) = runners
        assert runner.pid not in {o.pid for o in pf.find_orphan_runners()}

        shown = sollama("--host", free_host(), "cleanup", "--dry-run")
        assert shown.exit_code == 0, shown.output
        assert f"pid {runner.pid} " not in shown.stdout

        # Even a plan that (wrongly, or from an older look) lists the served runner does not signal it: the
        # orphan check is repeated right before the signal.
        plan = cleanup.plan_cleanup(load_settings(), dry_run=False)
        step = next(s for s in plan.steps if s.name == "orphans")
        step.details = [pf.OrphanRunner(runner.pid, runner.create_time(), runner.cmdline(), proc.pid,
                                        runner.memory_info().rss, runner.exe())]
        step.skipped, plan.steps = None, [step]
        report = cleanup.run_cleanup(load_settings(), plan, timeout=5)
        assert report.outcomes[0].count == 0
        assert not _gone(runner)
        again = httpx.post(f"{url}/api/generate", json={"model": conftest.TEST_MODEL, "prompt": "Hi",
                                                         "stream": False, "options": {"num_predict": 2}}, timeout=120)
        assert again.status_code == 200 and _runners_of(proc.pid) == [runner]

        # Now the daemon dies (SIGKILL, by the PID we started): its runner is orphaned.
        proc.kill()
        proc.wait(timeout=10)
        if _gone(runner):
            pytest.skip("this Ollama's runner exits with its server: no orphan to clean up")
        assert wait_for(lambda: runner.pid in {o.pid for o in pf.find_orphan_runners()}, 10)
        plan = cleanup.plan_cleanup(load_settings(), dry_run=False)
        step = next(s for s in plan.steps if s.name == "orphans")
        step.details = [o for o in step.details if o.pid == runner.pid]  # only ours
        plan.steps = [step]
        report = cleanup.run_cleanup(load_settings(), plan, timeout=5)
        assert report.outcomes[0].ok and report.outcomes[0].count == 1
        assert wait_for(lambda: _gone(runner), 10)
    finally:
        conftest.stop_process(proc)
        for leftover in runners:  # the runner of the daemon we started, if a failed assertion left it
            if not _gone(leftover):
                leftover.kill()


def test_foreground_daemon_survives_sollama_being_killed(host, tmp_path):
    """`start --foreground` is SIGKILLed: the daemon's output does not go through a pipe that nobody reads any
    more, so it keeps answering (and logging) request after request."""
    env = {**os.environ, "NO_COLOR": "1"}
    fg = subprocess.Popen([SOLLAMA, "start", "--foreground"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: pf.verify(pf.read_pidfile()) is not None and not nothing_listens(host), 60)
        url = f"http://{host}"
        assert wait_for(lambda: httpx.get(f"{url}/", timeout=2).status_code == 200, 30)
        conftest.ensure_test_model(url)
        daemon = pf.verify(pf.read_pidfile())
        fg.kill()  # SIGKILL: no handler runs
        fg.wait(timeout=10)
        for _ in range(20):  # each request writes a log line
            assert httpx.get(f"{url}/api/version", timeout=10).status_code == 200
            assert httpx.get(f"{url}/api/tags", timeout=10).status_code == 200
        _load(url)
        assert httpx.get(f"{url}/api/ps", timeout=10).json()["models"]
        assert daemon.is_running() and daemon.status() != psutil.STATUS_ZOMBIE
        assert "/api/tags" in pf.log_path().read_text(errors="replace")  # it logs to the file itself
    finally:
        if fg.poll() is None:
            fg.send_signal(signal.SIGKILL)
            fg.wait(timeout=10)


def test_stop_and_restart_with_another_host_leave_the_real_daemon_alone(sollama, host):
    started = sollama("start", "--json")
    assert started.exit_code == 0, started.output
    pid = json.loads(started.stdout)["pid"]
    other = free_host()
    result = sollama("stop", "--host", other)
    assert result.exit_code == 0 and "left it alone" in result.stderr
    restarted = sollama("restart", "--host", other)
    assert restarted.exit_code == 1 and "already runs at" in restarted.stderr
    assert httpx.get(f"http://{host}/api/version", timeout=10).status_code == 200
    assert pf.verify(pf.read_pidfile()).pid == pid

    status = sollama("status", "--json")
    assert status.exit_code == 0, status.output
    data = json.loads(status.stdout)
    assert data["process"]["pid"] == pid and data["process"]["holds_port"] is True
    elsewhere = sollama("--host", other, "status", "--json")
    assert elsewhere.exit_code == 4 and json.loads(elsewhere.stdout)["log"]["files"] == []

    stopped = sollama("stop", "--host", host, "--json")
    assert stopped.exit_code == 0 and json.loads(stopped.stdout)["pid"] == pid
    assert wait_for(lambda: nothing_listens(host), 15)


def test_memory_what_if_against_the_real_daemon_saves_nothing(sollama, ollama):
    what_if = sollama("--host", ollama.host, "memory", "--parallel", "100000", "--num-ctx", "131072", "--json")
    assert what_if.exit_code == 0, what_if.output
    assert json.loads(what_if.stdout)["saved_to"] is None and not memory_service.plan_path().exists()
    refused = sollama("--host", ollama.host, "memory", "--parallel", "100000", "--num-ctx", "131072", "--save")
    assert refused.exit_code == 1 and "does not fit" in refused.stderr
    assert not memory_service.plan_path().exists()
    saved = sollama("--host", ollama.host, "memory", "--save", "--json")
    assert saved.exit_code == 0 and Path(json.loads(saved.stdout)["saved_to"]).is_file()
