"""Keys and usage in PostgreSQL (`gateway.store: postgresql://…`), for several gateway replicas.

- `PgKeys`: what `sollama keys` does (create, list, revoke, rotate), each edit one transaction that also bumps a
  version row, so every replica's `PgKeyRing` sees it at its next check (at most `interval` later; a Redis
  broadcast, when configured, makes it at once).
- `PgKeyRing`: the gateway's view (`gateway.keystore.KeyView`: lookup by secret hash in memory) with its loading
  step: reload when the version row moved.
- `PgUsageSink`: one row per gateway request, written by a background thread in batches (one transaction and one
  `executemany` per batch, never one per request). A replica killed with SIGKILL loses at most what it queued
  since its last flush: at most `batch` rows or `interval` seconds of traffic.

Secrets are never stored: only their sha256 (the `KeyRecord.hash`), as in the keys file.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from ollama_ops.core.gateway.keys import KeyRecord, hash_secret, new_secret, valid_name
from ollama_ops.edges.store import UsageRow
from ollama_ops.errors import ConfigError, SollamaError, UsageError
from ollama_ops.gateway.keystore import KeyView
from ollama_ops.gateway.usage import BatchSink

_KEY_COLUMNS = tuple(f.name for f in fields(KeyRecord))
_USAGE_COLUMNS = tuple(f.name for f in fields(UsageRow))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sollama_keys (
  name text PRIMARY KEY, hash text NOT NULL UNIQUE, hint text NOT NULL, created double precision NOT NULL,
  models jsonb NOT NULL DEFAULT '[]', rpm integer, tpm integer, concurrency integer, daily_tokens bigint,
  priority integer NOT NULL DEFAULT 1, admin boolean NOT NULL DEFAULT false, expires double precision,
  revoked double precision);
CREATE TABLE IF NOT EXISTS sollama_keys_version (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
INSERT INTO sollama_keys_version VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS sollama_usage (
  id bigserial PRIMARY KEY, time double precision NOT NULL, command text NOT NULL, model text NOT NULL,
  prompt_tokens integer NOT NULL DEFAULT 0, eval_tokens integer NOT NULL DEFAULT 0,
  total_s double precision NOT NULL DEFAULT 0, load_s double precision NOT NULL DEFAULT 0,
  prompt_eval_s double precision NOT NULL DEFAULT 0, eval_s double precision NOT NULL DEFAULT 0,
  ttft_s double precision, outcome text NOT NULL DEFAULT 'ok', error text, prompt text, key text, request_id text);
CREATE INDEX IF NOT EXISTS sollama_usage_time ON sollama_usage (time);
"""
_SCHEMA_LOCK = 0x50_11A4A  # an advisory lock id: replicas starting together create the schema one at a time


def _connect(dsn: str, **kwargs: Any):
    import psycopg

    try:
        return psycopg.connect(dsn, connect_timeout=5, **kwargs)
    except psycopg.OperationalError as exc:
        raise ConfigError(f"cannot reach the PostgreSQL store: {str(exc).strip().splitlines()[0][:200]}",
                          hint="check gateway.store (postgresql://user@host:port/database)") from exc


def ensure_schema(dsn: str) -> None:
    """Create the tables when missing (idempotent, safe when several replicas start at once)."""
    with _connect(dsn) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(_SCHEMA)


def _record(row: tuple) -> KeyRecord:
    data = dict(zip(_KEY_COLUMNS, row, strict=True))
    data["models"] = list(data["models"] or [])
    return KeyRecord(**data)


_SELECT_KEYS = f"SELECT {', '.join(_KEY_COLUMNS)} FROM sollama_keys ORDER BY created, name"
_SELECT_VERSION = "SELECT version FROM sollama_keys_version WHERE id = 1"


class PgKeys:
    """`sollama keys` against PostgreSQL: the same operations and errors as the keys file."""

    def __init__(self, dsn: str, *, clock: Callable[[], float] = time.time,
                 on_change: Callable[[str], object] | None = None) -> None:
        self.dsn, self.clock, self.on_change = dsn, clock, on_change
        ensure_schema(dsn)

    def list(self) -> list[KeyRecord]:
        with _connect(self.dsn) as conn:
            return [_record(r) for r in conn.execute(_SELECT_KEYS).fetchall()]

    def _changed(self, conn, name: str) -> None:
        conn.execute("UPDATE sollama_keys_version SET version = version + 1 WHERE id = 1")

    def _announce(self, name: str) -> None:
        if self.on_change is not None:
            self.on_change(name)

    def create(self, name: str, *, models: builtins.list[str] | None = None, rpm: int | None = None,
               tpm: int | None = None, concurrency: int | None = None, daily_tokens: int | None = None,
               priority: int = 1, admin: bool = False, expires_in: float | None = None):
        from ollama_ops.gateway.keystore import CreatedKey

        if not valid_name(name):
            raise UsageError(f"invalid key name {name!r:.70}: use 1-64 letters, digits, '.', '_' or '-'")
        for label, value in (("--rpm", rpm), ("--tpm", tpm), ("--concurrency", concurrency),
                             ("--daily-tokens", daily_tokens), ("--priority", priority)):
            if value is not None and value < 1:
                raise UsageError(f"{label} must be at least 1, got {value}")
        now = self.clock()
        secret = new_secret()
        record = KeyRecord(name=name, hash=hash_secret(secret), hint=secret[-4:], created=now,
                           models=list(models or []), rpm=rpm, tpm=tpm, concurrency=concurrency,
                           daily_tokens=daily_tokens, priority=priority, admin=admin,
                           expires=now + expires_in if expires_in else None)
        values = [json.dumps(record.models) if c == "models" else getattr(record, c) for c in _KEY_COLUMNS]
        with _connect(self.dsn) as conn, conn.transaction():
            inserted = conn.execute(
                f"INSERT INTO sollama_keys ({', '.join(_KEY_COLUMNS)}) VALUES "
                f"({', '.join(['%s'] * len(_KEY_COLUMNS))}) ON CONFLICT (name) DO NOTHING", values).rowcount
            if inserted != 1:
                raise SollamaError(f"a key named '{name}' already exists",
                                   hint=f"`sollama keys rotate {name}` gives it a new secret")
            self._changed(conn, name)
        self._announce(name)
        return CreatedKey(record, secret)

    def _update(self, name: str, sql: str, params: tuple) -> KeyRecord:
        with _connect(self.dsn) as conn, conn.transaction():
            row = conn.execute(f"UPDATE sollama_keys SET {sql} WHERE name = %s RETURNING "
                               f"{', '.join(_KEY_COLUMNS)}", (*params, name)).fetchone()
            if row is None:
                raise SollamaError(f"no key named '{name}'", hint="see `sollama keys list`")
            self._changed(conn, name)
        self._announce(name)
        return _record(row)

    def revoke(self, name: str) -> KeyRecord:
        return self._update(name, "revoked = COALESCE(revoked, %s)", (self.clock(),))

    def rotate(self, name: str):
        from ollama_ops.gateway.keystore import CreatedKey

        secret = new_secret()
        record = self._update(name, "hash = %s, hint = %s, revoked = NULL", (hash_secret(secret), secret[-4:]))
        return CreatedKey(record, secret)


class PgKeyRing(KeyView):
    """The gateway's keys from PostgreSQL: reloaded when the version row moved (checked at most every `interval`
    seconds) or when told (`reload`, from a Redis broadcast). Lookups, counts and keeping the last good keys when
    the store cannot be reached are `KeyView`'s; this class gives only the loading step."""

    def __init__(self, dsn: str, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, interval: float = 0.5) -> None:
        self.dsn = dsn
        self._conn: Any = None
        ensure_schema(dsn)
        super().__init__(clock=clock, monotonic=monotonic, interval=interval)

    @property
    def version(self) -> int | None:
        return self.stamp if isinstance(self.stamp, int) else None

    def _connection(self):
        if self._conn is None or self._conn.closed:
            self._conn = _connect(self.dsn, autocommit=True)
        return self._conn

    def _load(self, known: object) -> tuple[object, builtins.list[KeyRecord] | None]:
        try:
            conn = self._connection()
            row = conn.execute(_SELECT_VERSION).fetchone()  # the cheap check, every `interval`
            if row is not None and int(row[0]) == known:
                return known, None
            with conn.transaction():  # the version and the keys it stands for, together
                version = int(conn.execute(_SELECT_VERSION).fetchone()[0])
                return version, [_record(r) for r in conn.execute(_SELECT_KEYS).fetchall()]
        except Exception:
            if self._conn is not None:  # a fresh connection next time
                self._conn.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


_INSERT_USAGE = (f"INSERT INTO sollama_usage ({', '.join(_USAGE_COLUMNS)}) "
                 f"VALUES ({', '.join(['%s'] * len(_USAGE_COLUMNS))})")


def _insert_usage(conn, rows: list[UsageRow]) -> None:
    """One transaction, one executemany (psycopg pipelines it: one round trip for the batch)."""
    values = [[getattr(row, c) for c in _USAGE_COLUMNS] for row in rows]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_INSERT_USAGE, values)


class PgUsageSink(BatchSink):
    """The usage sink on PostgreSQL (the SQLite `UsageSink`'s interface and thread: `gateway.usage.BatchSink`).
    A batch that cannot be written is counted in `failed`; the next one connects afresh."""

    thread_name = "sollama-usage-pg"

    def __init__(self, dsn: str, *, batch: int = 256, interval: float = 0.5) -> None:
        self.dsn = dsn
        self._conn: Any = None
        ensure_schema(dsn)
        super().__init__(batch=batch, interval=interval)

    def _write(self, conn, rows: list[UsageRow]) -> None:
        _insert_usage(conn, rows)
        self.written += len(rows)
        self.batches += 1

    def _write_rows(self, rows: list[UsageRow]) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = _connect(self.dsn, autocommit=True)
            self._write(self._conn, rows)
        except Exception as exc:  # the store is away: count the batch as lost, try afresh next time
            self.failed += len(rows)
            self.last_error = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def usage_rows(dsn: str, since: float | None = None, model: str | None = None) -> list[UsageRow]:
    """Usage rows, oldest first (the same selection as the SQLite store's `usage_rows`), for `report --usage`."""
    sql = f"SELECT {', '.join(_USAGE_COLUMNS)} FROM sollama_usage WHERE true"
    params: list[Any] = []
    if since is not None:
        sql += " AND time >= %s"
        params.append(since)
    if model is not None:
        sql += " AND model = %s"
        params.append(model)
    ensure_schema(dsn)
    with _connect(dsn) as conn:
        return [UsageRow(**dict(zip(_USAGE_COLUMNS, r, strict=True)))
                for r in conn.execute(sql + " ORDER BY time, id", params).fetchall()]


def record_usage(dsn: str, rows: Iterable[UsageRow]) -> int:
    """Write rows in one transaction (tests and imports)."""
    rows = list(rows)
    ensure_schema(dsn)
    with _connect(dsn, autocommit=True) as conn:
        _insert_usage(conn, rows)
    return len(rows)


class WithGatewayUsage:
    """`report --usage` with `gateway.store`: this machine's generate/chat rows (SQLite) and every replica's
    gateway rows (PostgreSQL), oldest first."""

    def __init__(self, local: Any, dsn: str) -> None:
        self.local, self.dsn = local, dsn

    def usage_rows(self, since: float | None = None, model: str | None = None) -> list[UsageRow]:
        rows = self.local.usage_rows(since=since, model=model) + usage_rows(self.dsn, since=since, model=model)
        return sorted(rows, key=lambda r: r.time)
