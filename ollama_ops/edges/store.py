"""The SQLite history: benchmark runs, their per-request samples, and generate/chat usage rows.

This module is the single owner of the schema (version in `PRAGMA user_version`). The file uses WAL with
`synchronous=NORMAL`: every commit survives the writer being killed (SIGKILL, OOM), and readers never block the
writer. Requests are committed in batches as a run goes, so a killed bench loses at most its in-flight requests.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from ollama_ops.core.bench.records import RequestRecord, RunMeta, RunRecord
from ollama_ops.errors import SollamaError

__all__ = ["RequestRecord", "RunMeta", "RunRecord", "Store", "UsageRow", "SCHEMA_VERSION"]

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 10_000
RUN_STATUSES = ("running", "completed", "interrupted", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL DEFAULT 'running',
    host TEXT NOT NULL DEFAULT '',
    ollama_version TEXT,
    model TEXT NOT NULL,
    model_digest TEXT,
    api TEXT NOT NULL DEFAULT 'generate',
    load TEXT NOT NULL DEFAULT '{}',
    sollama_version TEXT,
    system TEXT NOT NULL DEFAULT '{}',
    summary TEXT,
    sweep_id TEXT,
    sweep_step INTEGER,
    writer_pid INTEGER,
    writer_node TEXT
);
CREATE INDEX IF NOT EXISTS runs_model ON runs(model, started_at);
CREATE INDEX IF NOT EXISTS runs_label ON runs(label, started_at);
CREATE TABLE IF NOT EXISTS requests (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    warmup INTEGER NOT NULL DEFAULT 0,
    send_time REAL NOT NULL,
    ttft REAL,
    e2el REAL,
    itl TEXT NOT NULL DEFAULT '[]',
    output_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens_source TEXT NOT NULL DEFAULT 'server',
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    load_s REAL,
    prompt_eval_s REAL,
    eval_s REAL,
    total_s REAL,
    queue_s REAL,
    ok INTEGER NOT NULL,
    error_kind TEXT,
    error TEXT,
    phase TEXT NOT NULL DEFAULT 'run',
    gateway_queue_s REAL,
    turn INTEGER,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    command TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    eval_tokens INTEGER NOT NULL DEFAULT 0,
    total_s REAL NOT NULL DEFAULT 0,
    load_s REAL NOT NULL DEFAULT 0,
    prompt_eval_s REAL NOT NULL DEFAULT 0,
    eval_s REAL NOT NULL DEFAULT 0,
    ttft_s REAL,
    outcome TEXT NOT NULL,
    error TEXT,
    prompt TEXT,
    key TEXT,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS usage_time ON usage(time);
"""
# Columns added since schema 1, as (table, column, declaration). Schema 2: usage rows name the gateway key (and
# request id) that made them. Schema 3: a request's phase (older warm-up rows become "warmup"), the queue wait a
# gateway reported, and its conversation turn. A file of an older schema gets the columns it lacks and the tables
# it lacks (a gateway's usage file has no bench tables).
_ADDED_COLUMNS = (("usage", "key", "TEXT"), ("usage", "request_id", "TEXT"),
                  ("requests", "phase", "TEXT NOT NULL DEFAULT 'run'"), ("requests", "gateway_queue_s", "REAL"),
                  ("requests", "turn", "INTEGER"))


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older file to SCHEMA_VERSION in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, declaration in _ADDED_COLUMNS:
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if present and column not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                if (table, column) == ("requests", "phase"):
                    conn.execute("UPDATE requests SET phase = 'warmup' WHERE warmup = 1")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass
class UsageRow:
    """One `sollama generate` / `chat` turn (the contract with the generate/chat commands)."""

    time: float
    command: str  # "generate" | "chat"
    model: str
    prompt_tokens: int = 0
    eval_tokens: int = 0
    total_s: float = 0.0
    load_s: float = 0.0
    prompt_eval_s: float = 0.0
    eval_s: float = 0.0
    ttft_s: float | None = None
    outcome: str = "ok"  # "ok" | "error" | "timeout" | "interrupted"
    error: str | None = None
    prompt: str | None = None
    key: str | None = None  # the gateway key's name (command "gateway")
    request_id: str | None = None


_REQUEST_COLUMNS = ("run_id", "idx", "warmup", "send_time", "ttft", "e2el", "itl", "output_tokens",
                    "output_tokens_source", "prompt_tokens", "load_s", "prompt_eval_s", "eval_s", "total_s",
                    "queue_s", "ok", "error_kind", "error", "phase", "gateway_queue_s", "turn")
_USAGE_COLUMNS = ("time", "command", "model", "prompt_tokens", "eval_tokens", "total_s", "load_s",
                  "prompt_eval_s", "eval_s", "ttft_s", "outcome", "error", "prompt", "key", "request_id")
_RUN_META_COLUMNS = ("label", "started_at", "host", "ollama_version", "model", "model_digest", "api", "load",
                     "sollama_version", "system", "sweep_id", "sweep_step")

F = TypeVar("F", bound=Callable[..., Any])


def _guarded(method: F) -> F:
    """Turn sqlite errors into one-line SollamaErrors naming the file."""

    @wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc

    return wrapper  # type: ignore[return-value]


class Store:
    """The history database. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            from ollama_ops import paths

            path = paths.history_db()
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self._setup()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._error(exc) from exc

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _error(self, exc: sqlite3.DatabaseError) -> SollamaError:
        """Say what is wrong (read-only, locked, disk full, cannot open, corrupt); only a corrupt file gets the
        advice to move it away (the others would throw away intact history)."""
        return history_error(self.path, exc)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SollamaError(f"history database {self.path} is closed")
        return self._conn

    def _setup(self) -> None:
        conn = self.conn
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SollamaError(f"history database {self.path} has schema {version}, newer than this sollama "
                               f"understands ({SCHEMA_VERSION})", hint="upgrade sollama or move the file away")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if version < SCHEMA_VERSION:
            _migrate(conn)

    def _transaction(self) -> _Tx:
        return _Tx(self.conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    @_guarded
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    # -- usage (generate / chat) ------------------------------------------------------------------------------

    @_guarded
    def record_usage(self, row: UsageRow) -> None:
        """Append one generate/chat usage row (committed at once)."""
        values = [getattr(row, name) for name in _USAGE_COLUMNS]
        with self._transaction():
            self.conn.execute(f"INSERT INTO usage ({', '.join(_USAGE_COLUMNS)}) "
                              f"VALUES ({', '.join('?' * len(_USAGE_COLUMNS))})", values)

    @_guarded
    def record_usage_batch(self, rows: Iterable[UsageRow]) -> int:
        """Append many usage rows in one transaction (the gateway's batched writes); returns how many."""
        values = [[getattr(row, name) for name in _USAGE_COLUMNS] for row in rows]
        if values:
            with self._transaction():
                self.conn.executemany(f"INSERT INTO usage ({', '.join(_USAGE_COLUMNS)}) "
                                      f"VALUES ({', '.join('?' * len(_USAGE_COLUMNS))})", values)
        return len(values)

    @_guarded
    def usage_rows(self, since: float | None = None, model: str | None = None) -> list[UsageRow]:
        """Usage rows, oldest first, optionally from epoch `since` on and for one `model`."""
        sql = f"SELECT {', '.join(_USAGE_COLUMNS)} FROM usage WHERE 1=1"
        params: list[Any] = []
        if since is not None:
            sql += " AND time >= ?"
            params.append(since)
        if model is not None:
            sql += " AND model = ?"
            params.append(model)
        rows = self.conn.execute(sql + " ORDER BY time, id", params).fetchall()
        return [UsageRow(**dict(zip(_USAGE_COLUMNS, r, strict=True))) for r in rows]

    @_guarded
    def prune_usage(self, before_epoch: float) -> int:
        """Delete usage rows older than `before_epoch`; returns how many."""
        with self._transaction():
            return self.conn.execute("DELETE FROM usage WHERE time < ?", (before_epoch,)).rowcount

    # -- bench runs -------------------------------------------------------------------------------------------

    @_guarded
    def create_run(self, meta: RunMeta) -> int:
        """Insert a run with status "running"; returns its id."""
        values: list[Any] = []
        for name in _RUN_META_COLUMNS:
            value = getattr(meta, name)
            values.append(json.dumps(value) if name in ("load", "system") else value)
        columns = (*_RUN_META_COLUMNS, "status", "writer_pid", "writer_node")
        values += ["running", os.getpid(), socket.gethostname()]
        with self._transaction():
            cur = self.conn.execute(f"INSERT INTO runs ({', '.join(columns)}) "
                                    f"VALUES ({', '.join('?' * len(columns))})", values)
        return int(cur.lastrowid or 0)

    @_guarded
    def add_requests(self, run_id: int, rows: Iterable[RequestRecord]) -> int:
        """Append request rows to a run in one committed transaction; returns how many."""
        values = [_request_values(run_id, r) for r in rows]
        if not values:
            return 0
        with self._transaction():
            self.conn.executemany(f"INSERT OR REPLACE INTO requests ({', '.join(_REQUEST_COLUMNS)}) "
                                  f"VALUES ({', '.join('?' * len(_REQUEST_COLUMNS))})", values)
        return len(values)

    @_guarded
    def finish_run(self, run_id: int, status: str, summary: dict[str, Any] | None = None) -> None:
        """Mark a run completed / interrupted / failed and store its summary."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self._transaction():
            self.conn.execute("UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                              (status, time.time(), None if summary is None else json.dumps(summary), run_id))

    @_guarded
    def runs(self, last: int | None = None, label: str | None = None, model: str | None = None,
             sweep_id: str | None = None) -> list[RunRecord]:
        """Runs, oldest first; `last` keeps the newest N after filtering."""
        where = ["1=1"]
        params: list[Any] = []
        for column, value in (("label", label), ("model", model), ("sweep_id", sweep_id)):
            if value is not None:
                where.append(f"r.{column} = ?")
                params.append(value)
        order = " ORDER BY r.started_at DESC, r.id DESC"
        if last is not None:
            order += " LIMIT ?"
            params.append(int(last))
        records = list(self._runs_where(" AND ".join(where) + order, params))
        return records[::-1]

    @_guarded
    def run(self, run_id: int) -> RunRecord:
        """One run by id; SollamaError when there is none."""
        for record in self._runs_where("r.id = ?", [run_id]):
            return record
        raise SollamaError(f"no bench run {run_id} in {self.path}", hint="see `sollama report`")

    def _runs_where(self, where: str, params: list[Any]) -> Iterator[RunRecord]:
        sql = (f"SELECT r.id, r.status, r.finished_at, r.summary, r.writer_pid, r.writer_node, "
               f"{', '.join('r.' + c for c in _RUN_META_COLUMNS)}, "
               f"(SELECT COUNT(*) FROM requests q WHERE q.run_id = r.id AND q.warmup = 0) "
               f"FROM runs r WHERE {where}")
        for row in self.conn.execute(sql, params).fetchall():
            yield _run_record(row)

    @_guarded
    def requests(self, run_id: int, include_warmup: bool = False) -> list[RequestRecord]:
        """The request rows of a run, by index."""
        sql = f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests WHERE run_id = ?"
        if not include_warmup:
            sql += " AND warmup = 0"
        rows = self.conn.execute(sql + " ORDER BY idx", (run_id,)).fetchall()
        return [_request_record(r) for r in rows]

    @_guarded
    def prunable_runs(self, before_epoch: float) -> tuple[list[int], list[int]]:
        """(ids of runs started before `before_epoch` that may be deleted, ids of those still being written:
        status "running" and their writer process alive, which are never deleted)."""
        rows = self.conn.execute("SELECT id, status, writer_pid, writer_node FROM runs WHERE started_at < ? "
                                 "ORDER BY id", (before_epoch,)).fetchall()
        live = [r[0] for r in rows if r[1] == "running" and _writer_alive(r[2], r[3])]
        return [r[0] for r in rows if r[0] not in live], live

    @_guarded
    def prune_runs(self, before_epoch: float) -> int:
        """Delete runs started before `before_epoch` (with their requests), except runs still being written;
        returns how many runs were deleted."""
        with self._transaction():
            ids, _ = self.prunable_runs(before_epoch)
            self.conn.executemany("DELETE FROM requests WHERE run_id = ?", [(i,) for i in ids])
            self.conn.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in ids])
        return len(ids)


def _sqlite_kind(exc: sqlite3.DatabaseError) -> str:
    """SQLite's primary result code name ("SQLITE_READONLY", ...) or, without one, a guess from the message."""
    name = getattr(exc, "sqlite_errorname", None)
    if isinstance(name, str) and name.startswith("SQLITE_"):
        for kind in ("READONLY", "BUSY", "LOCKED", "FULL", "CORRUPT", "NOTADB", "CANTOPEN", "IOERR", "PERM",
                     "CONSTRAINT"):
            if name == f"SQLITE_{kind}" or name.startswith(f"SQLITE_{kind}_"):
                return kind
        return name.removeprefix("SQLITE_")
    text = str(exc).lower()
    for needle, kind in (("readonly", "READONLY"), ("read-only", "READONLY"), ("locked", "BUSY"), ("busy", "BUSY"),
                         ("disk is full", "FULL"), ("malformed", "CORRUPT"), ("not a database", "NOTADB"),
                         ("unable to open", "CANTOPEN"), ("disk i/o", "IOERR")):
        if needle in text:
            return kind
    return "OTHER"


def _why_unwritable(path: Path) -> str | None:
    """Why `path` (or the directory that must hold its journal) cannot be written, in words, or None."""
    directory = path.parent
    if not directory.is_dir():
        return f"its directory {directory} does not exist"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory} is read-only"
    return None


def history_error(path: Path, exc: sqlite3.DatabaseError) -> SollamaError:
    """One-line error for a failed SQLite operation on the history file at `path`."""
    text = str(exc)
    kind = _sqlite_kind(exc)
    if kind in ("READONLY", "PERM") or (kind in ("CANTOPEN", "IOERR") and _why_unwritable(path)):
        why = _why_unwritable(path) or "the file system is read-only or the file is immutable"
        return SollamaError(f"history database {path} is read-only ({why}): {text}",
                            hint="make it writable, or point SOLLAMA_HOME at a writable directory")
    if kind in ("BUSY", "LOCKED"):
        return SollamaError(f"history database {path} is locked by another process: {text}",
                            hint="another sollama is writing to it; try again")
    if kind == "FULL":
        return SollamaError(f"history database {path} cannot grow: the disk is full ({text})",
                            hint="free some space on that file system")
    if kind == "CANTOPEN":
        return SollamaError(f"cannot open history database {path}: {text}")
    if kind in ("CORRUPT", "NOTADB"):
        return SollamaError(f"history database {path} is corrupt: {text}; move it away",
                            hint="sollama starts a new one")
    if kind == "IOERR":
        return SollamaError(f"history database {path}: input/output error: {text}",
                            hint="check the disk and the file system")
    return SollamaError(f"history database {path}: {text}")


class _Tx:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.owner = True
        else:
            self.owner = False
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self.owner or not self.conn.in_transaction:
            return
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _request_values(run_id: int, r: RequestRecord) -> tuple[Any, ...]:
    # Gaps to 0.1 µs: the JSON stays short, and no clock here is better than that.
    itl = "[" + ",".join([f"{gap:.7f}" for gap in r.itl]) + "]"
    return (run_id, r.idx, int(r.warmup), r.send_time, r.ttft, r.e2el, itl, r.output_tokens,
            r.output_tokens_source, r.prompt_tokens, r.load_s, r.prompt_eval_s, r.eval_s, r.total_s, r.queue_s,
            int(r.ok), r.error_kind, r.error, r.phase, r.gateway_queue_s, r.turn)


def _request_record(row: tuple[Any, ...]) -> RequestRecord:
    data = dict(zip(_REQUEST_COLUMNS, row, strict=True))
    data["itl"] = json.loads(data["itl"] or "[]")
    data["ok"] = bool(data["ok"])
    data["warmup"] = bool(data["warmup"])
    return RequestRecord(**data)


def _writer_alive(pid: int | None, node: str | None) -> bool:
    """Whether the process that wrote a "running" run may still be writing it (unknown → assume alive)."""
    if not pid or node != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    run_id, status, finished_at, summary, writer_pid, writer_node = row[:6]
    meta = dict(zip(_RUN_META_COLUMNS, row[6:6 + len(_RUN_META_COLUMNS)], strict=True))
    count = row[-1]
    if status == "running" and not _writer_alive(writer_pid, writer_node):
        status = "interrupted"
    meta["load"] = json.loads(meta["load"] or "{}")
    meta["system"] = json.loads(meta["system"] or "{}")
    return RunRecord(id=run_id, status=status, finished_at=finished_at,
                     summary=json.loads(summary) if summary else None, request_count=count, **meta)
