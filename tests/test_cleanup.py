"""`sollama cleanup`: plan, confirmation rules, stale files, log rotation, history pruning, orphaned runners.

Every invocation here uses `--host` on a free port (so no one else's daemon is unloaded) and, except in the
orphan test, `--no-orphans` (so no one else's processes can be touched)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ollama_ops.config import load_settings
from ollama_ops.edges import process as pf
from ollama_ops.services import cleanup
from tests.lifecycle_helpers import end, free_host, spawn_sleep, wait_for, write_pidfile_text


@pytest.fixture
def host() -> str:
    return free_host()


def _big_log(size: int = 5000) -> Path:
    log = pf.log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(("x" * 99 + "\n") * (size // 100))
    return log


@pytest.fixture
def stale(monkeypatch) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A stale pid file naming an unrelated live `sleep`, and a 5000-byte log over a 1024-byte limit."""
    monkeypatch.setenv("SOLLAMA_LOGGING_MAX_LOG_BYTES", "1024")
    sleeper = spawn_sleep()
    try:
        write_pidfile_text(f"{sleeper.pid}\n")
        yield sleeper, _big_log()
    finally:
        end(sleeper)


def test_dry_run_shows_the_plan_and_changes_nothing(sollama, host, stale):
    sleeper, log = stale
    result = sollama("--host", host, "cleanup", "--dry-run", "--no-orphans")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout and "server.json" in result.stdout and "ollama.log" in result.stdout
    assert "no server answers" in result.stdout
    assert pf.pidfile_path().exists() and log.stat().st_size == 5000 and sleeper.poll() is None
    data = json.loads(sollama("--host", host, "cleanup", "--dry-run", "--no-orphans", "--json").stdout)
    steps = {s["name"]: s for s in data["plan"]["steps"]}
    assert steps["stale-files"]["skipped"] is None and steps["stale-files"]["count"] == 1
    assert steps["rotate-logs"]["skipped"] is None and steps["unload"]["skipped"]
    assert "details" not in steps["rotate-logs"] and data["report"] is None


def test_non_tty_without_yes_refuses_with_exit_2(sollama, host):
    write_pidfile_text("999999\n")
    result = sollama("--host", host, "cleanup", "--no-orphans")
    assert result.exit_code == 2, result.output
    assert "--yes" in result.stderr and pf.pidfile_path().exists()


def test_yes_removes_stale_pidfile_and_rotates_logs_without_signalling(sollama, host, stale):
    sleeper, log = stale
    for n, size in ((1, 100), (2, 200), (3, 700)):
        log.with_name(f"ollama.log.{n}").write_text("y" * size)
    result = sollama("--host", host, "cleanup", "--yes", "--no-orphans")
    assert result.exit_code == 0, result.output
    assert "stale-files: removed" in result.stdout and "rotate-logs: rotated 1 log(s)" in result.stdout
    assert "700 B" in result.stdout  # the oldest rotated copy was dropped
    assert not pf.pidfile_path().exists() and sleeper.poll() is None
    assert log.stat().st_size == 0 and log.with_name("ollama.log.1").stat().st_size == 5000
    assert [log.with_name(f"ollama.log.{n}").stat().st_size for n in (2, 3)] == [100, 200]
    again = sollama("--host", host, "cleanup", "--yes", "--no-orphans")
    assert again.exit_code == 0 and "nothing to clean up" in again.stdout


def test_lock_file_no_one_holds_is_removed(sollama, host):
    pf.lock_path().parent.mkdir(parents=True, exist_ok=True)
    pf.lock_path().write_text("")
    result = sollama("--host", host, "cleanup", "--yes", "--no-orphans", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    outcomes = {o["name"]: o for o in data["report"]["outcomes"]}
    assert outcomes["stale-files"]["ok"] and outcomes["stale-files"]["count"] == 1
    assert not pf.lock_path().exists()


def test_prune_history_older_than(sollama, host):
    from ollama_ops import paths
    from ollama_ops.core.bench.records import RunMeta
    from ollama_ops.edges.store import Store

    with Store(paths.history_db()) as store:
        old = store.create_run(RunMeta(model="m", started_at=time.time() - 40 * 86400))
        store.finish_run(old, "completed")
        store.finish_run(store.create_run(RunMeta(model="m", started_at=time.time() - 3600)), "completed")
    plan = sollama("--host", host, "cleanup", "--dry-run", "--no-orphans", "--older-than", "30d")
    assert plan.exit_code == 0 and "1 run(s)" in plan.stdout
    result = sollama("--host", host, "cleanup", "--yes", "--no-orphans", "--older-than", "30d")
    assert result.exit_code == 0, result.output
    assert "deleted 1 bench run(s)" in result.stdout
    with Store(paths.history_db()) as store:
        assert len(store.runs()) == 1
    assert sollama("cleanup", "--older-than", "soon", "--dry-run").exit_code == 2


def test_rotate_log_shifts_copies(tmp_path):
    log = tmp_path / "d.log"
    for n, text in ((1, "one"), (2, "two"), (3, "three")):
        log.with_name(f"d.log.{n}").write_text(text)
    log.write_text("current")
    assert cleanup.rotate_log(log, keep=3) == len("three")
    assert [log.with_name(f"d.log.{n}").read_text() for n in (1, 2, 3)] == ["current", "one", "two"]
    assert log.read_text() == ""


# -- orphaned runners ----------------------------------------------------------------------------------------------

RUNNER_SCRIPT = "i=0; while [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done\n"


@pytest.fixture
def fake_ollama_dir(tmp_path: Path) -> Path:
    """`ollama` here is /bin/sh: `./ollama runner ...` runs the script `runner`, `./ollama serve` runs `serve`
    (which starts a runner child and waits), so their command lines look like Ollama's."""
    directory = tmp_path / "fake"
    directory.mkdir()
    (directory / "ollama").symlink_to("/bin/sh")
    (directory / "runner").write_text(RUNNER_SCRIPT)
    (directory / "serve").write_text("./ollama runner --model served &\nwait\n")
    return directory


def _find(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info.get("cmdline") or [])]


def test_orphaned_runner_is_found_verified_and_terminated_and_a_served_one_is_left(fake_ollama_dir, sollama, host):
    marker = f"orphan-{os.getpid()}-{time.monotonic_ns()}"
    # The intermediate shell exits at once, so the runner's parent is gone (re-parented to init).
    subprocess.run(["sh", "-c", f"./ollama runner --model {marker} >/dev/null 2>&1 &"], cwd=fake_ollama_dir,
                   check=True, timeout=10)
    serve = subprocess.Popen(["./ollama", "serve"], cwd=fake_ollama_dir, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(_find(marker)) == 1, 5)
        orphan = _find(marker)[0]
        assert wait_for(lambda: any(c.cmdline()[1:2] == ["runner"] for c in psutil.Process(serve.pid).children()), 5)
        served = next(c for c in psutil.Process(serve.pid).children() if c.cmdline()[1:2] == ["runner"])

        found = {o.pid: o for o in pf.find_orphan_runners()}
        assert orphan.pid in found and served.pid not in found
        assert found[orphan.pid].cmdline == ["./ollama", "runner", "--model", marker]

        shown = sollama("--host", host, "cleanup", "--dry-run")
        assert shown.exit_code == 0 and f"pid {orphan.pid}" in shown.stdout and marker in shown.stdout

        # Do only our own orphan (others' test runs may have orphans on this machine too).
        plan = cleanup.plan_cleanup(load_settings(), dry_run=False)
        step = next(s for s in plan.steps if s.name == "orphans")
        step.details = [o for o in step.details if o.pid == orphan.pid]
        plan.steps = [step]
        report = cleanup.run_cleanup(load_settings(), plan, timeout=5)
        assert report.outcomes[0].ok and report.outcomes[0].count == 1
        assert wait_for(lambda: not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE, 5)
        assert served.is_running() and serve.poll() is None
    finally:
        for proc in _find(marker) + [c for c in psutil.Process(serve.pid).children(recursive=True)]:
            proc.kill()
        end(serve)


def test_terminate_verified_refuses_a_changed_process():
    sleeper = spawn_sleep()
    try:
        proc = psutil.Process(sleeper.pid)
        assert pf.terminate_verified(sleeper.pid, proc.create_time() + 1.0, proc.cmdline(), 1.0) is None
        assert pf.terminate_verified(sleeper.pid, proc.create_time(), ["ollama", "runner"], 1.0) is None
        assert sleeper.poll() is None
        assert pf.terminate_verified(sleeper.pid, proc.create_time(), proc.cmdline(), 1.0) == "sigterm"
        assert wait_for(lambda: sleeper.poll() is not None, 5)  # psutil reaped it: gone
    finally:
        end(sleeper)
