"""The daemon's log files: the last lines, the error lines, and following the current file as it grows."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ollama_ops.core.health import is_error_line
from ollama_ops.edges import process as pf


@dataclass
class LogView:
    """The last lines of the daemon's log (oldest first), and the files they came from."""

    path: str
    lines: list[str]
    files: list[str] = field(default_factory=list)
    errors_only: bool = False
    exists: bool = True


def read_log(lines: int = 50, *, errors_only: bool = False, files: list[Path] | None = None,
             current: Path | None = None) -> LogView:
    """The last `lines` lines across the current log and its rotated copies (only error lines with
    `errors_only`); never reads more than it keeps in memory."""
    files = pf.server_log_paths() if files is None else files
    current = current or pf.log_path()
    keep: deque[str] = deque(maxlen=max(lines, 0))
    if lines > 0:
        for path in reversed(files):  # oldest first
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    for line in fh:
                        line = line.rstrip("\n")
                        if not errors_only or is_error_line(line):
                            keep.append(line)
            except OSError:
                continue
    return LogView(str(current), list(keep), [str(p) for p in files], errors_only, exists=bool(files))


def follow_log(path: Path, *, alive: Callable[[], bool], errors_only: bool = False, poll: float = 0.25,
               alive_every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> Iterator[str]:
    """Yield lines appended to `path` from now on, until `alive()` turns false (checked every `alive_every`
    seconds; what was written until then is still yielded). A file truncated or replaced by log rotation is
    read again from its start. Ctrl-C (KeyboardInterrupt) ends it too, at the caller."""
    fh = None
    inode: int | None = None
    pending = b""
    from_start = not path.exists()  # a log that appears later is read whole

    def emit(raw: bytes) -> Iterator[str]:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if not errors_only or is_error_line(line):
            yield line

    try:
        next_check = clock() + alive_every
        while True:
            if fh is None and path.exists():
                fh = open(path, "rb")
                inode = os.fstat(fh.fileno()).st_ino
                if not from_start:
                    fh.seek(0, os.SEEK_END)
            if fh is not None:
                chunk = fh.read(1 << 16)
                if chunk:
                    *complete, pending = (pending + chunk).split(b"\n")
                    for raw in complete:
                        yield from emit(raw)
                    continue
                if _rotated(path, fh.tell(), inode):
                    fh.close()
                    fh, pending, from_start = None, b"", True
                    continue
            if clock() >= next_check:
                if not alive():
                    rest = pending + (fh.read() if fh is not None else b"")
                    for raw in rest.split(b"\n"):
                        if raw:
                            yield from emit(raw)
                    return
                next_check = clock() + alive_every
            time.sleep(poll)
    finally:
        if fh is not None:
            fh.close()


def _rotated(path: Path, position: int, inode: int | None) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return st.st_ino != inode or st.st_size < position


def daemon_alive() -> bool:
    """True while the daemon recorded in the pid file runs (verified)."""
    return pf.verify(pf.read_pidfile()) is not None
