"""`X-Request-ID`: a caller's id is kept when it is short and plain, else a fresh one is made."""

from __future__ import annotations

import re
import secrets

MAX_LEN = 128
_ALLOWED = re.compile(r"[A-Za-z0-9._:\-/+=@]+")


def sanitize(raw: str | bytes | None) -> str | None:
    """The caller's request id when it is 1..128 printable-safe characters (letters, digits and ._:-/+=@), else
    None (the gateway then makes its own): ids land in logs, so nothing that could forge a log line passes."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    raw = raw.strip()
    if not raw or len(raw) > MAX_LEN or not _ALLOWED.fullmatch(raw):
        return None
    return raw


def new_id() -> str:
    return secrets.token_hex(12)


def request_id(raw: str | bytes | None) -> str:
    return sanitize(raw) or new_id()
