"""The usage store for the gateway: schema 1 files gain the key columns in place, and the sink writes batches
off the caller's thread into a 0600 file."""

from __future__ import annotations

import sqlite3
import stat

from ollama_ops.edges.store import SCHEMA_VERSION, Store, UsageRow
from ollama_ops.gateway.usage import UsageSink


def test_schema_1_is_migrated_in_place(tmp_path):
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE usage (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, command TEXT NOT NULL,
            model TEXT NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0, eval_tokens INTEGER NOT NULL DEFAULT 0,
            total_s REAL NOT NULL DEFAULT 0, load_s REAL NOT NULL DEFAULT 0, prompt_eval_s REAL NOT NULL DEFAULT 0,
            eval_s REAL NOT NULL DEFAULT 0, ttft_s REAL, outcome TEXT NOT NULL, error TEXT, prompt TEXT);
        INSERT INTO usage (time, command, model, outcome) VALUES (1.0, 'generate', 'm', 'ok');
        PRAGMA user_version = 1;""")
    conn.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        store.record_usage(UsageRow(time=2.0, command="gateway", model="m", key="ci", request_id="r1"))
        rows = store.usage_rows()
    assert [(r.command, r.key, r.request_id) for r in rows] == [("generate", None, None), ("gateway", "ci", "r1")]


def test_sink_writes_batches_to_a_private_file(tmp_path):
    path = tmp_path / "usage.sqlite3"
    sink = UsageSink(path, batch=7, interval=0.05)
    for i in range(50):
        sink.add(UsageRow(time=float(i), command="gateway", model="m", eval_tokens=i, key=f"k{i % 3}"))
    sink.close()
    assert sink.written == 50 and sink.failed == 0
    with Store(path) as store:
        rows = store.usage_rows()
    assert [r.eval_tokens for r in rows] == list(range(50)) and {r.key for r in rows} == {"k0", "k1", "k2"}
    for suffix in ("", "-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra
