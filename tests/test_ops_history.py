"""History safety: `cleanup --older-than` never deletes a run still being written, and history errors say what
is wrong (read-only, locked, disk full, corrupt); only a corrupt file gets the advice to move it away."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_ops import paths
from ollama_ops.core.bench.records import RequestRecord, RunMeta
from ollama_ops.edges.store import Store
from ollama_ops.errors import SollamaError
from tests.lifecycle_helpers import free_host, wait_for

SOLLAMA = [sys.executable, "-m", "ollama_ops"]


def _request(idx: int) -> RequestRecord:
    return RequestRecord(idx=idx, send_time=time.time(), ok=True, ttft=0.01, e2el=0.02, output_tokens=3)


def test_cleanup_keeps_runs_still_being_written_and_prunes_finished_and_abandoned_ones(sollama):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=10)
    with Store(paths.history_db()) as store:
        live = store.create_run(RunMeta(model="m", started_at=time.time() - 3600))  # this process writes it
        done = store.create_run(RunMeta(model="m", started_at=time.time() - 3600))
        store.finish_run(done, "completed")
        abandoned = store.create_run(RunMeta(model="m", started_at=time.time() - 3600))
        store.conn.execute("UPDATE runs SET writer_pid = ? WHERE id = ?", (dead.pid, abandoned))

    plan = sollama("--host", free_host(), "cleanup", "--dry-run", "--no-orphans", "--older-than", "0s")
    assert plan.exit_code == 0, plan.output
    assert "2 run(s)" in plan.stdout and f"keeping 1 run(s) still being written (#{live})" in plan.stdout

    result = sollama("--host", free_host(), "cleanup", "--yes", "--no-orphans", "--older-than", "0s", "--json")
    assert result.exit_code == 0, result.output
    outcome = next(o for o in json.loads(result.stdout)["report"]["outcomes"] if o["name"] == "prune-history")
    assert outcome["ok"] and outcome["count"] == 2
    with Store(paths.history_db()) as store:
        assert [r.id for r in store.runs()] == [live]
        assert store.add_requests(live, [_request(0)]) == 1  # the writer goes on: no foreign-key error
        store.finish_run(live, "completed")
        assert store.run(live).request_count == 1


def test_a_live_bench_survives_cleanup_older_than(sollama, stub):
    """A real `sollama bench` process writing its run while `cleanup --older-than 0s --yes` runs: the bench ends
    normally, its run complete with every request."""
    stub.configure(tokens=4, first_token_delay=0.05, token_delay=0.05)
    bench = subprocess.Popen([*SOLLAMA, "--host", stub.host, "bench", "-m", "stub-model", "-n", "30", "-c", "1",
                              "--warmup", "0", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        def writing() -> bool:
            if not paths.history_db().exists():
                return False
            with contextlib.suppress(SollamaError), Store(paths.history_db()) as store:
                return any(r.status == "running" and r.request_count > 0 for r in store.runs())
            return False

        assert wait_for(writing, 60, 0.1), bench.stderr.read() if bench.poll() is not None else "no run"
        result = sollama("--host", free_host(), "cleanup", "--yes", "--no-orphans", "--older-than", "0s")
        assert result.exit_code == 0, result.output
        assert bench.poll() is None  # cleanup ran while the bench was still writing
        out, err = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(timeout=5)
    assert bench.returncode == 0, err
    run_id = json.loads(out)["run_id"]
    with Store(paths.history_db()) as store:
        run = store.run(run_id)
        assert run.status == "completed" and run.request_count == 30


# -- history errors ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make `path` unwritable for this user: chmod, and for root (whom modes do not stop) the immutable flag."""
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    immutable = False
    if os.access(path, os.W_OK):  # root
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        if not immutable:
            path.chmod(mode)
            pytest.skip("cannot make a path read-only here (root without chattr)")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


def _history_with_a_run() -> Path:
    with Store(paths.history_db()) as store:
        store.finish_run(store.create_run(RunMeta(model="m")), "completed")
    return paths.history_db()


@pytest.mark.parametrize("what", ["file", "dir"])
def test_read_only_history_says_read_only_and_not_corrupt(sollama, what):
    db = _history_with_a_run()
    for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        extra.unlink(missing_ok=True)
    target = db if what == "file" else db.parent
    with read_only(target):
        result = sollama("--host", free_host(), "cleanup", "--yes", "--no-orphans", "--older-than", "0s")
        if what == "dir":
            report = sollama("report")
    assert result.exit_code == 1, result.output
    assert "read-only" in result.output and str(db) in result.output
    assert "corrupt" not in result.output and "move it away" not in result.output
    if what == "dir":
        assert report.exit_code == 1 and "read-only" in report.stderr and "move it away" not in report.stderr


def test_corrupt_history_is_the_only_one_told_to_move_it_away(sollama):
    db = paths.history_db()
    db.write_bytes(b"this is not an SQLite file, just text " * 200)
    result = sollama("report")
    assert result.exit_code == 1, result.output
    assert "corrupt" in result.stderr and "move it away" in result.stderr and str(db) in result.stderr


def test_locked_history_says_locked():
    db = _history_with_a_run()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Store(db) as store:
            store.conn.execute("PRAGMA busy_timeout = 50")
            with pytest.raises(SollamaError) as info:
                store.finish_run(store.create_run(RunMeta(model="m")), "completed")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked by another process" in info.value.one_line() and "move it away" not in info.value.one_line()


def test_full_disk_says_full():
    """SQLite's own SQLITE_FULL (a page limit stands in for a full file system)."""
    db = _history_with_a_run()
    with Store(db) as store:
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        run = store.create_run(RunMeta(model="m"))
        with pytest.raises(SollamaError) as info:
            store.add_requests(run, [_request(i) for i in range(5000)])
    text = info.value.one_line()
    assert "disk is full" in text and str(db) in text and "corrupt" not in text and "move it away" not in text


@pytest.mark.parametrize(("name", "wanted"), [
    ("SQLITE_READONLY", "read-only"), ("SQLITE_READONLY_DBMOVED", "read-only"), ("SQLITE_BUSY", "locked"),
    ("SQLITE_LOCKED_SHAREDCACHE", "locked"), ("SQLITE_FULL", "disk is full"), ("SQLITE_CORRUPT", "corrupt"),
    ("SQLITE_NOTADB", "corrupt"), ("SQLITE_CONSTRAINT_FOREIGNKEY", "FOREIGN KEY"),
])
def test_every_sqlite_error_kind_gets_its_own_words(tmp_path, name, wanted):
    from ollama_ops.edges.store import history_error

    exc = sqlite3.OperationalError("FOREIGN KEY constraint failed" if "CONSTRAINT" in name else "boom")
    exc.sqlite_errorname = name
    text = history_error(tmp_path / "h.sqlite3", exc).one_line()
    assert wanted in text
    assert ("move it away" in text) == (wanted == "corrupt")


# -- a read-only state dir: a clear error naming the path, and doctor checks it ------------------------------------

@pytest.mark.parametrize("which", ["state", "data"])
def test_read_only_sollama_dirs_are_named_by_commands_and_failed_by_doctor(sollama, isolated, which, tmp_path):
    from tests.lifecycle_helpers import fake_binary

    for sub in ("state", "data"):
        (isolated / sub).mkdir(exist_ok=True)
    binary = fake_binary(tmp_path / "bin", "exit 1")
    with read_only(isolated / which):
        doctor = sollama("--host", free_host(), "doctor", "--json")
        if which == "state":
            command = sollama("--host", free_host(), "start", "--binary", str(binary))
        else:
            command = sollama("report")
    assert doctor.exit_code == 1, doctor.output
    check = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "sollama dirs")
    assert check["status"] == "fail" and f"{which} dir {isolated / which} is not writable" in check["detail"]
    assert "SOLLAMA_HOME" in check["fix"]
    assert command.exit_code == 1, command.output
    assert str(isolated / which) in command.stderr and "internal error" not in command.stderr
    assert "read-only" in command.stderr and "Traceback" not in command.output


def test_doctor_passes_writable_sollama_dirs(sollama, isolated):
    doctor = sollama("--host", free_host(), "doctor", "--json")
    check = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "sollama dirs")
    assert check["status"] == "pass" and str(isolated / "state") in check["detail"]
    assert list(isolated.rglob(".sollama-doctor-*")) == []  # the probe file is gone


def test_doctor_version_probe_kills_its_whole_process_group_on_timeout(tmp_path):
    """A binary whose `--version` hangs and leaves a child holding the pipes: the probe returns at its timeout
    and the child is gone too."""
    import psutil

    from ollama_ops.services.doctor import binary_version
    from tests.lifecycle_helpers import fake_binary

    child_pid = tmp_path / "child.pid"
    binary = fake_binary(tmp_path / "bin", f'sleep 300 & echo $! > {child_pid}; sleep 300')
    version, error = binary_version(str(binary), "http://127.0.0.1:1", timeout=1.0)
    assert version is None and "did not answer within 1s" in error
    pid = int(child_pid.read_text())
    assert wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 5)
