"""Reading the text files and streams a user hands us (config files, prompt files, --file, stdin) safely.

A path is checked with stat before it is opened: a directory, a FIFO, a device or a socket is refused (opening a
FIFO can block forever, a device can be endless), and so is a file above the size limit. The file is opened
non-blocking and checked again on the open descriptor (it may have been swapped meanwhile), at most `limit` + 1
bytes are read, and the bytes must be UTF-8 text without NUL bytes. Every problem is raised as the caller's
error class (ConfigError for config files, UsageError for inputs) with one line naming the path and, for bad
bytes, the line and column.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, TextIO

from ollama_ops.errors import SollamaError

MiB = 1 << 20
CONFIG_LIMIT = 1 * MiB  # a config file is a few KiB
INPUT_LIMIT = 64 * MiB  # a prompt, a prompts file or stdin: far beyond any model's context

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str | None:
    """What a non-regular file is ("a directory", …), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def read_text_file(path: str | Path, *, what: str, error: type[SollamaError], limit: int = INPUT_LIMIT) -> str:
    """The text of the regular file at `path` (UTF-8, no NUL, at most `limit` bytes), or `error` saying why not.
    `what` names the file in the message, e.g. "config file" or "--prompts file"."""
    path = Path(path).expanduser()
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind is not None:
            raise error(f"cannot read {what} {path}: it is {kind}, not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        kind = _kind(info.st_mode)
        if kind is not None:
            raise error(f"cannot read {what} {path}: it is {kind}, not a regular file")
        if info.st_size > limit:
            raise error(f"{what} {path} is too large: {_size(info.st_size)} (the limit is {_size(limit)})")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{what} {path} is too large: more than {_size(limit)}")
    return decode_text(data, f"{what} {path}", error)


def read_stream_text(stream: BinaryIO, *, what: str, error: type[SollamaError], limit: int = INPUT_LIMIT) -> str:
    """Read a byte stream (stdin) to its end as UTF-8 text, at most `limit` bytes."""
    try:
        data = stream.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{what} is too large: more than {_size(limit)}")
    return decode_text(data, what, error)


def read_stdin_text(stream: TextIO, *, error: type[SollamaError], what: str = "stdin",
                    limit: int = INPUT_LIMIT) -> str:
    """All of stdin as text: its bytes are decoded here (UTF-8, no NUL), so binary input is a clean error."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return read_stream_text(buffer, what=what, error=error, limit=limit)
    try:
        text = stream.read(limit + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what}: {getattr(exc, 'strerror', None) or exc}") from None
    if "\0" in text:
        raise error(f"{what} is binary, not text (it has a NUL character)")
    return text


def _where(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def decode_text(data: bytes, origin: str, error: type[SollamaError]) -> str:
    """`data` as text: UTF-8 (a leading byte-order mark dropped), no NUL bytes; else `error` naming where."""
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if 0 <= nul < exc.start:
            raise error(f"{origin} is binary, not text (a NUL byte at {_where(data, nul)})") from None
        raise error(f"{origin} is not UTF-8 text (byte 0x{data[exc.start]:02x} at {_where(data, exc.start)})")\
            from None
    if nul >= 0:
        raise error(f"{origin} is binary, not text (a NUL byte at {_where(data, nul)})")
    return text.removeprefix("\ufeff")
