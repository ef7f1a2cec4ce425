"""The watchdog's event log: one SQLite table in `data_dir/events.sqlite3` (0600), apart from the bench history
so neither schema waits on the other. Written by `sollama watch`, read by `sollama status`."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_ops.errors import SollamaError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watch_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    reason TEXT NOT NULL,
    pid INTEGER,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS watch_events_kind ON watch_events (kind, address, id);
"""


@dataclass
class WatchEvent:
    """One thing the watchdog saw or did. kind: started, probe-failed, recovered, unload, restart, restarted,
    restart-failed, backoff, give-up, stopped."""

    at: str
    kind: str
    address: str
    reason: str
    pid: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"at": self.at, "kind": self.kind, "address": self.address, "reason": self.reason,
                           "pid": self.pid, "detail": self.detail}, sort_keys=True)


def events_db(create: bool = True) -> Path:
    from ollama_ops import paths

    return paths.data_dir(create=create) / "events.sqlite3"


class EventLog:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or events_db()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            self.conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self.conn.executescript(_SCHEMA)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise SollamaError(f"cannot open the watchdog's event log {self.path}: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, event: WatchEvent) -> None:
        try:
            self.conn.execute("INSERT INTO watch_events (at, kind, address, reason, pid, detail) VALUES (?,?,?,?,?,?)",
                              (event.at, event.kind, event.address, event.reason, event.pid,
                               json.dumps(event.detail, sort_keys=True)))
        except sqlite3.DatabaseError as exc:
            raise SollamaError(f"cannot write to the watchdog's event log {self.path}: {exc}") from exc

    def last(self, *, kinds: tuple[str, ...] | None = None, address: str | None = None,
             limit: int = 20) -> list[WatchEvent]:
        """The newest events first."""
        where, params = [], []
        if kinds:
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            params += list(kinds)
        if address:
            where.append("address = ?")
            params.append(address)
        sql = ("SELECT at, kind, address, reason, pid, detail FROM watch_events"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?")
        rows = self.conn.execute(sql, [*params, limit]).fetchall()
        return [WatchEvent(at, kind, addr, reason, pid, json.loads(detail or "{}"))
                for at, kind, addr, reason, pid, detail in rows]


def recent_restarts(address: str, limit: int = 3) -> list[WatchEvent]:
    """The last restarts (and give-ups) the watchdog recorded for an address; [] when it never ran here."""
    path = events_db(create=False)
    if not path.exists():
        return []
    try:
        with EventLog(path) as log:
            return log.last(kinds=("restarted", "restart-failed", "give-up"), address=address, limit=limit)
    except SollamaError:
        return []
