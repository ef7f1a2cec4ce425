"""Keys and usage in a real PostgreSQL: `sollama keys` operations, a second replica's key ring seeing a revoke,
batched usage writes, and usage that survives a SIGKILLed writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ollama_ops.edges.store import UsageRow
from ollama_ops.errors import SollamaError, UsageError
from ollama_ops.fleet.pgstore import PgKeyRing, PgKeys, PgUsageSink, ensure_schema, record_usage, usage_rows

ROOT = Path(__file__).resolve().parents[1]


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_keys_create_list_revoke_rotate(postgres_url):
    announced = []
    keys = PgKeys(postgres_url, clock=lambda: 1_000.0, on_change=announced.append)
    made = keys.create("team-a", models=["smollm2"], rpm=5, priority=2)
    keys.create("team-b", admin=True, expires_in=3600)
    assert made.secret.startswith("sk-sollama-") and made.record.hint == made.secret[-4:]
    listed = keys.list()
    assert [(r.name, r.models, r.rpm, r.priority, r.admin, r.expires) for r in listed] == [
        ("team-a", ["smollm2"], 5, 2, False, None), ("team-b", [], None, 1, True, 4_600.0)]
    assert made.secret not in json.dumps([r.hash for r in listed])  # only hashes are stored
    with pytest.raises(SollamaError, match="already exists"):
        keys.create("team-a")
    with pytest.raises(UsageError, match="invalid key name"):
        keys.create("bad name")
    with pytest.raises(UsageError, match="--rpm must be at least 1"):
        keys.create("team-c", rpm=0)
    assert keys.revoke("team-a").revoked == 1_000.0
    assert keys.revoke("team-a").revoked == 1_000.0  # revoking twice keeps the first time
    rotated = keys.rotate("team-a")
    assert rotated.record.revoked is None and rotated.secret != made.secret
    with pytest.raises(SollamaError, match="no key named 'nobody'"):
        keys.revoke("nobody")
    assert announced == ["team-a", "team-b", "team-a", "team-a", "team-a"]


def test_a_second_replica_sees_a_revoke_at_its_next_check(postgres_url):
    keys = PgKeys(postgres_url)
    secret = keys.create("team-a", rpm=3).secret
    ticks = Ticks()
    ring = PgKeyRing(postgres_url, monotonic=ticks, interval=0.5)  # replica 2
    try:
        assert ring.lookup(secret).name == "team-a" and len(ring) == 1 and ring.usable_count() == 1
        keys.revoke("team-a")  # on replica 1 (or the CLI)
        ticks.now += 0.1
        assert ring.lookup(secret) is not None  # not checked again yet: within its interval
        ticks.now += 0.5
        assert ring.lookup(secret) is None  # the version moved: reloaded, refused
        assert ring.usable_count() == 0 and ring.any_keys
        new = keys.rotate("team-a").secret
        ring.reload()  # what a Redis broadcast triggers: at once
        assert ring.lookup(new).name == "team-a" and ring.lookup(secret) is None
        assert ring.lookup(None) is None and ring.lookup("sk-sollama-wrong") is None
        assert ring.errors == 0
    finally:
        ring.close()


def test_usage_sink_writes_batches(postgres_url):
    sink = PgUsageSink(postgres_url, batch=100, interval=0.05)
    for i in range(1_000):
        sink.add(UsageRow(time=float(i), command="gateway", model="m:1" if i % 2 else "m:2", prompt_tokens=i,
                          eval_tokens=2 * i, total_s=0.5, ttft_s=None if i % 3 else 0.1))
    sink.close(timeout=60)
    assert (sink.written, sink.failed, sink.last_error) == (1_000, 0, None)
    assert 10 <= sink.batches < 1_000  # batched: never one transaction per row
    rows = usage_rows(postgres_url)
    assert [r.time for r in rows] == [float(i) for i in range(1_000)]
    assert rows[7].eval_tokens == 14 and rows[7].model == "m:1" and rows[3].ttft_s == 0.1 and rows[4].ttft_s is None
    assert len(usage_rows(postgres_url, since=900.0, model="m:2")) == 50


def test_usage_sink_counts_rows_it_could_not_write(postgres_server, postgres_url):
    ensure_schema(postgres_url)
    sink = PgUsageSink(postgres_url, interval=0.05)
    sink.dsn = postgres_server.dsn("no_such_database")
    sink.add(UsageRow(time=1.0, command="gateway", model="m:1"))
    sink.close(timeout=30)
    assert (sink.written, sink.failed) == (0, 1) and "no_such_database" in sink.last_error


def test_flushed_usage_survives_a_sigkilled_replica(postgres_url):
    ensure_schema(postgres_url)
    record_usage(postgres_url, [UsageRow(time=1.0, command="gateway", model="m:1")])
    proc = subprocess.Popen([sys.executable, "-m", "tests.fleet_workers", "usage",
                             json.dumps({"dsn": postgres_url, "rows": 300})], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-3000:]
        said = json.loads(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert said["written"] == 300 and said["batches"] >= 5  # 64 rows a batch at most
    rows = usage_rows(postgres_url)
    assert len(rows) == 301 and [r.eval_tokens for r in rows[1:]] == list(range(300))
