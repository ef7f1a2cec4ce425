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


class BatchSink:
    """Rows handed over by the event loop (`add`: one row or a list of them) and written by one background thread,
    a batch per transaction, so the hot path only appends to a queue. Subclasses write (`_write_rows`) and close
    (`_close`); a batch that cannot be written is counted in `failed` with `last_error`, never retried forever."""

    thread_name = "sollama-usage"

    def __init__(self, *, batch: int = 256, interval: float = 0.5) -> None:
        self.batch, self.interval = batch, interval
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.written = 0
        self.failed = 0
        self.batches = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def add(self, row: UsageRow | list[UsageRow]) -> None:
        """Queue one row, or a batch of rows."""
        self._queue.put(row)

    def _write_rows(self, rows: list[UsageRow]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _run(self) -> None:
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
            if rows:
                self._write_rows(rows)
        self._close()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)


class UsageSink(BatchSink):
    """The SQLite usage store (`sollama report --usage`), files 0600."""

    def __init__(self, path: Path | None = None, *, batch: int = 256, interval: float = 0.5) -> None:
        self.path = path
        self._store: Store | None = None
        self._opened = False
        super().__init__(batch=batch, interval=interval)

    def _write_rows(self, rows: list[UsageRow]) -> None:
        if not self._opened:
            self._opened = True
            try:
                self._store = _open_private(self.path)
            except (SollamaError, OSError) as exc:
                self.last_error = str(exc)
        if self._store is None:
            self.failed += len(rows)
            return
        try:
            self.written += self._store.record_usage_batch(rows)
            self.batches += 1
        except SollamaError as exc:
            self.failed += len(rows)
            self.last_error = str(exc)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
