"""The access log: one JSON line per request in the state dir (`gateway.log`, rotated by size like the daemon's
log), written in batches (the request path only appends an encoded line to a list). No prompt or response text
unless `log_prompts` is on; never a key's secret (records name the key)."""

from __future__ import annotations

import json
import os
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


class AccessLog:
    """The access log file: batches of lines appended with one `write` each from the event loop (every
    `Gateway.FLUSH_S`; a page-cache write of a few KiB, cheaper than waking a writer thread, which would take the
    GIL from the loop), rotated by size like the daemon's log (`gateway.log.1` is the newest old one). The file
    is created 0600."""

    def __init__(self, path: Path | None = None, *, max_bytes: int = 10 * 1024 * 1024, backups: int = 3) -> None:
        self.path = path or log_path()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_bytes, self.backups = max_bytes, backups
        self._fd: int | None = None
        self._size = 0
        self.errors = 0

    def write(self, entry: dict | str | list) -> None:
        """Append one entry or a batch: each a dict, or a line already encoded (str), one JSON line each."""
        entries = entry if isinstance(entry, list) else [entry]
        if not entries:
            return
        data = ("\n".join(e if isinstance(e, str) else json.dumps(e, separators=(",", ":"), ensure_ascii=True)
                          for e in entries) + "\n").encode()
        try:
            if self._fd is None:
                self._open()
            if self.max_bytes > 0 and self._size > 0 and self._size + len(data) > self.max_bytes:
                self._rotate()
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)  # type: ignore[arg-type]
                view = view[written:]
            self._size += len(data)
        except OSError:
            self.errors += 1  # a full or read-only disk loses log lines, never requests
            self.close()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        self.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
