"""Cleanup never touches what it does not own: a runner counts as orphaned only when no live Ollama serves it,
never by its parent's program name (fakes here: `/bin/sh` under Ollama's names; the real daemon:
test_ops_real.py). Only the processes these tests start are ever signalled."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from ollama_ops.config import load_settings
from ollama_ops.edges import process as pf
from ollama_ops.services import cleanup
from tests.lifecycle_helpers import free_host, wait_for

RUNNER_SCRIPT = "i=0; while [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done\n"


@pytest.fixture
def fake_dir(tmp_path: Path) -> Path:
    """`ollama` and a differently named link `llm-daemon` are both /bin/sh; `./llm-daemon serve` runs the script
    `serve`, which starts `./ollama runner --model <marker>` (a runner command line like Ollama's) and waits."""
    directory = tmp_path / "fake"
    directory.mkdir()
    (directory / "ollama").symlink_to("/bin/sh")
    (directory / "llm-daemon").symlink_to("/bin/sh")
    (directory / "runner").write_text(RUNNER_SCRIPT)
    (directory / "serve").write_text('./ollama runner --model "$MARKER" &\nwait\n')
    return directory


def _ours(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in (p.info.get("cmdline") or []):
            found.append(p)
    return found


def _kill_ours(marker: str, *popens: subprocess.Popen) -> None:  # type: ignore[type-arg]
    for proc in _ours(marker):  # only processes carrying this test's unique marker
        proc.kill()
    for popen in popens:
        if popen.poll() is None:
            popen.kill()
        popen.wait(timeout=5)


def _plan_only(marker: str) -> cleanup.CleanupPlan:
    """The orphan step of a real cleanup plan, narrowed to this test's processes (other test runs on this machine
    may have orphans of their own)."""
    plan = cleanup.plan_cleanup(load_settings(), dry_run=False)
    step = next(s for s in plan.steps if s.name == "orphans")
    step.details = [o for o in step.details if marker in o.cmdline]
    step.count = len(step.details)
    plan.steps = [step]
    return plan


def test_a_runner_served_by_a_differently_named_daemon_is_not_an_orphan(fake_dir, sollama):
    marker = f"served-{os.getpid()}-{time.monotonic_ns()}"
    serve = subprocess.Popen(["./llm-daemon", "serve"], cwd=fake_dir, env={**os.environ, "MARKER": marker},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(_ours(marker)) == 1, 5)
        runner = _ours(marker)[0]
        assert runner.ppid() == serve.pid
        assert runner.pid not in {o.pid for o in pf.find_orphan_runners()}

        result = sollama("--host", free_host(), "cleanup", "--yes")
        assert result.exit_code == 0, result.output
        assert f"pid {runner.pid}" not in result.output
        assert runner.is_running() and runner.status() != psutil.STATUS_ZOMBIE and serve.poll() is None
    finally:
        _kill_ours(marker, serve)


def test_a_runner_whose_daemon_died_is_an_orphan_and_is_terminated_after_verification(fake_dir):
    marker = f"orphaned-{os.getpid()}-{time.monotonic_ns()}"
    serve = subprocess.Popen(["./llm-daemon", "serve"], cwd=fake_dir, env={**os.environ, "MARKER": marker},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(_ours(marker)) == 1, 5)
        runner = _ours(marker)[0]
        serve.kill()  # the daemon dies; its runner lives on, re-parented
        serve.wait(timeout=5)
        assert wait_for(lambda: runner.ppid() != serve.pid, 5)
        assert runner.pid in {o.pid for o in pf.find_orphan_runners()}

        plan = _plan_only(marker)
        assert [o.pid for o in plan.steps[0].details] == [runner.pid]
        report = cleanup.run_cleanup(load_settings(), plan, timeout=5)
        assert report.outcomes[0].ok and report.outcomes[0].count == 1
        assert wait_for(lambda: not runner.is_running() or runner.status() == psutil.STATUS_ZOMBIE, 5)
    finally:
        _kill_ours(marker, serve)


def test_an_orphan_seen_in_the_plan_but_replaced_before_the_signal_is_left_alone(fake_dir):
    """Between plan and action the pid changed hands (here: the recorded creation time no longer matches):
    nothing is signalled."""
    marker = f"replaced-{os.getpid()}-{time.monotonic_ns()}"
    serve = subprocess.Popen(["./llm-daemon", "serve"], cwd=fake_dir, env={**os.environ, "MARKER": marker},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(_ours(marker)) == 1, 5)
        runner = _ours(marker)[0]
        serve.kill()
        serve.wait(timeout=5)
        assert wait_for(lambda: runner.ppid() != serve.pid, 5)
        plan = _plan_only(marker)
        plan.steps[0].details[0].create_time -= 5.0
        report = cleanup.run_cleanup(load_settings(), plan, timeout=5)
        assert report.outcomes[0].count == 0 and not report.outcomes[0].ok
        assert runner.is_running() and runner.status() != psutil.STATUS_ZOMBIE
    finally:
        _kill_ours(marker, serve)


def test_a_pid_record_is_trusted_only_for_an_ollama_serve_command_line(sollama):
    """A record that matches a live process exactly (pid, creation time, command line) but names some other
    program is stale: `stop` signals nothing."""
    import json

    from tests.lifecycle_helpers import end, spawn_sleep, write_pidfile_text

    sleeper = spawn_sleep()
    try:
        proc = psutil.Process(sleeper.pid)
        record = pf.PidRecord(pid=sleeper.pid, create_time=proc.create_time(), cmdline=proc.cmdline(),
                              host="127.0.0.1:11434", base_url="http://127.0.0.1:11434")
        write_pidfile_text(record.to_json())
        assert pf.verify(pf.read_pidfile()) is None
        result = sollama("stop", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["status"] == "stale"
        assert sleeper.poll() is None and proc.status() != psutil.STATUS_ZOMBIE
    finally:
        end(sleeper)
