"""The SQLite history: runs, requests, usage; durability under SIGKILL; a corrupt file is one clear line."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ollama_ops.edges.store import SCHEMA_VERSION, RequestRecord, RunMeta, Store, UsageRow
from ollama_ops.errors import SollamaError

ROOT = Path(__file__).resolve().parents[1]


def _request(idx: int, ok: bool = True, warmup: bool = False) -> RequestRecord:
    return RequestRecord(idx=idx, send_time=1000.0 + idx, ok=ok, warmup=warmup, ttft=0.1, e2el=0.5,
                         itl=[0.1, 0.15, 0.15], output_tokens=4, prompt_tokens=7, load_s=0.01, prompt_eval_s=0.05,
                         eval_s=0.4, total_s=0.48, queue_s=0.02, error_kind=None if ok else "http_503",
                         error=None if ok else "busy")


def test_run_round_trip(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        assert store.schema_version == SCHEMA_VERSION
        meta = RunMeta(model="m:1", host="127.0.0.1:1", label="base", load={"concurrency": 2, "requests": 3},
                       system={"cores": 2}, sweep_id="s1", sweep_step=0)
        run_id = store.create_run(meta)
        assert store.add_requests(run_id, [_request(0, warmup=True), _request(1), _request(2, ok=False)]) == 3
        store.finish_run(run_id, "completed", {"requests_ok": 1})
        run = store.run(run_id)
        assert (run.status, run.model, run.label, run.load, run.system) == (
            "completed", "m:1", "base", {"concurrency": 2, "requests": 3}, {"cores": 2})
        assert run.summary == {"requests_ok": 1} and run.finished_at is not None and run.request_count == 2
        rows = store.requests(run_id)
        assert [r.idx for r in rows] == [1, 2]
        assert rows[0].itl == [0.1, 0.15, 0.15] and rows[0].tpot == pytest.approx(0.4 / 3)
        assert rows[1].ok is False and rows[1].error_kind == "http_503"
        assert len(store.requests(run_id, include_warmup=True)) == 3
        assert [r.id for r in store.runs(sweep_id="s1")] == [run_id]


def test_filters_and_prune(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        ids = [store.create_run(RunMeta(model=m, label=lbl, started_at=t))
               for m, lbl, t in [("a", "x", 10.0), ("b", "x", 20.0), ("a", "y", 30.0)]]
        store.add_requests(ids[0], [_request(0)])
        assert [r.id for r in store.runs()] == ids
        assert [r.id for r in store.runs(last=2)] == ids[1:]
        assert [r.id for r in store.runs(model="a")] == [ids[0], ids[2]]
        assert [r.id for r in store.runs(label="x", last=1)] == [ids[1]]
        assert store.prune_runs(25.0) == 0  # all three are still being written (by this live process)
        for run_id in ids:
            store.finish_run(run_id, "completed")
        assert store.prune_runs(25.0) == 2
        assert [r.id for r in store.runs()] == [ids[2]]
        assert store.requests(ids[0]) == []
        with pytest.raises(SollamaError, match="no bench run"):
            store.run(ids[0])


def test_usage_rows(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        store.record_usage(UsageRow(time=100.0, command="generate", model="a", eval_tokens=5, ttft_s=0.2))
        store.record_usage(UsageRow(time=200.0, command="chat", model="b", outcome="timeout", error="stall"))
        store.record_usage(UsageRow(time=300.0, command="generate", model="a", prompt="hi"))
        assert [r.time for r in store.usage_rows()] == [100.0, 200.0, 300.0]
        assert [r.time for r in store.usage_rows(since=150.0)] == [200.0, 300.0]
        assert [r.time for r in store.usage_rows(model="a")] == [100.0, 300.0]
        assert store.usage_rows(model="b")[0].outcome == "timeout"
        assert store.prune_usage(250.0) == 2


def test_default_path_is_the_history_db(isolated: Path) -> None:
    with Store() as store:
        assert store.path == isolated / "data" / "history.sqlite3"
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_corrupt_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "h.db"
    bad.write_bytes(b"this is not sqlite at all\n" * 200)
    with pytest.raises(SollamaError) as info:
        Store(bad)
    assert f"history database {bad} is corrupt" in info.value.one_line()
    assert "move it away" in info.value.one_line()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SollamaError, match="newer than this sollama"):
        Store(path)


@pytest.mark.parametrize("argv", [["bench", "-m", "stub-model", "-n", "1"], ["report"]])
def test_cli_reports_a_corrupt_history_in_one_line(sollama, isolated: Path, stub, argv: list[str]) -> None:
    db = isolated / "data" / "history.sqlite3"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"\x00garbage" * 512)
    result = sollama("--host", stub.host, *argv)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "is corrupt" in lines[0] and "move it away" in lines[0] and str(db) in lines[0]
    assert "Traceback" not in result.output


WRITER = textwrap.dedent("""
    import sys, time
    from ollama_ops.edges.store import RequestRecord, RunMeta, Store
    store = Store(sys.argv[1])
    run_id = store.create_run(RunMeta(model="victim"))
    print("RUN", run_id, flush=True)
    for batch in range(100000):
        rows = [RequestRecord(idx=batch * 10 + i, send_time=time.time(), ok=True, ttft=0.1, e2el=0.2,
                              itl=[0.1], output_tokens=2) for i in range(10)]
        store.add_requests(run_id, rows)
        print("COMMITTED", (batch + 1) * 10, flush=True)
        time.sleep(0.005)
""")


def test_run_survives_sigkill_of_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with Store(path) as store:
        earlier = store.create_run(RunMeta(model="earlier"))
        store.add_requests(earlier, [RequestRecord(idx=i, send_time=1.0, ok=True) for i in range(5)])
        store.finish_run(earlier, "completed", {"ok": 5})
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    committed = 0
    run_id = None
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, value = line.split()
            if word == "RUN":
                run_id = int(value)
            else:
                committed = int(value)
            if committed >= 200 or time.monotonic() > deadline:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert run_id is not None and committed >= 200
    with Store(path) as store:
        rows = store.requests(run_id)
        assert len(rows) >= committed  # every batch it reported as committed is there
        assert len(rows) % 10 == 0  # and no half batch
        assert [r.idx for r in rows] == list(range(len(rows)))
        victim = store.run(run_id)
        assert victim.status == "interrupted"  # its writer is dead, so the reader says so
        old = store.run(earlier)
        assert old.status == "completed" and old.summary == {"ok": 5} and len(store.requests(earlier)) == 5
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
