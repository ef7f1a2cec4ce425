"""The access log: one JSON line per request in the state dir (`gateway.log`, rotated by size like the daemon's
log), written by a background thread so the hot path only puts a dict on a queue. No prompt or response text
unless `log_prompts` is on; never a key's secret (records name the key)."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import queue
from pathlib import Path

from ollama_ops.edges import process as pf


def log_path() -> Path:
    return pf.logs_dir() / "gateway.log"


def log_paths() -> list[Path]:
    """The current access log first, then its rotated copies (newest first)."""
    current = log_path()
    rotated = sorted(current.parent.glob(current.name + ".*"),
                     key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    return [p for p in [current, *rotated] if p.exists()]


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")


class _JsonFormatter(logging.Formatter):
    """One JSON line per entry; a record may carry a batch of entries (a list), written as that many lines. An
    entry is a dict, or a line already encoded (str)."""

    def format(self, record: logging.LogRecord) -> str:
        entries = record.msg if isinstance(record.msg, list) else [record.msg]
        return "\n".join(e if isinstance(e, str) else json.dumps(e, separators=(",", ":"), ensure_ascii=True)
                         for e in entries)


class AccessLog:
    def __init__(self, path: Path | None = None, *, max_bytes: int = 10 * 1024 * 1024, backups: int = 3) -> None:
        self.path = path or log_path()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = _PrivateRotatingHandler(self.path, maxBytes=max_bytes, backupCount=backups, delay=True)
        handler.setFormatter(_JsonFormatter())
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._listener = logging.handlers.QueueListener(self._queue, handler)
        self._handler = handler
        self._listener.start()

    def write(self, entry: dict | str | list) -> None:
        """Queue one entry, or a batch (one hand-over to the writer thread for many requests)."""
        record = logging.LogRecord("sollama.gateway", logging.INFO, "", 0, entry, None, None)
        self._queue.put(record)

    def close(self) -> None:
        self._listener.stop()
        self._handler.close()
