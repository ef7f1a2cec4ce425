"""The usage sink: one row per gateway request into the SQLite usage store (`sollama report --usage`), written
by a background thread in batches (one transaction per batch), so the hot path only appends to a queue."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

from ollama_ops.edges.store import Store, UsageRow
from ollama_ops.errors import SollamaError

_STOP = object()


def _open_private(path: Path | None) -> Store:
    """The usage store with its files 0600 (SQLite gives the -wal/-shm files the database file's mode)."""
    from ollama_ops import paths

    target = path or paths.history_db()
    os.close(os.open(target, os.O_RDWR | os.O_CREAT, 0o600))
    store = Store(target)
    for suffix in ("", "-wal", "-shm"):
        extra = target.with_name(target.name + suffix)
        if extra.exists():
            extra.chmod(0o600)
    return store


class UsageSink:
    def __init__(self, path: Path | None = None, *, batch: int = 256, interval: float = 0.5) -> None:
        self.path = path
        self.batch, self.interval = batch, interval
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.written = 0
        self.failed = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="sollama-usage", daemon=True)
        self._thread.start()

    def add(self, row: UsageRow | list[UsageRow]) -> None:
        """Queue one row, or a batch of rows."""
        self._queue.put(row)

    def _run(self) -> None:
        store: Store | None = None
        try:
            store = _open_private(self.path)
        except (SollamaError, OSError) as exc:
            self.last_error = str(exc)
        stopping = False
        while not stopping:
            rows: list[UsageRow] = []
            try:
                item = self._queue.get(timeout=self.interval)
            except queue.Empty:
                continue
            while True:
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, list):
                    rows.extend(item)
                else:
                    rows.append(item)  # type: ignore[arg-type]
                if len(rows) >= self.batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if rows and store is not None:
                try:
                    self.written += store.record_usage_batch(rows)
                except SollamaError as exc:
                    self.failed += len(rows)
                    self.last_error = str(exc)
            elif rows:
                self.failed += len(rows)
        if store is not None:
            store.close()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
