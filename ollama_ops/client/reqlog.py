"""One structured log record per request on the stdlib logger `ollama_ops`.

Fields (as `extra`, and in the message): request_id, method, path, model, status (the HTTP status, or the error's
class name when none came), duration_ms, tokens (the server's eval_count when it sent one), attempts. Never a
prompt or a response text. Nothing is formatted unless the logger is enabled for INFO.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

logger = logging.getLogger("ollama_ops")


def new_request_id() -> str:
    return os.urandom(6).hex()


class RequestLog:
    """The bookkeeping of one request, from the first attempt to the last byte."""

    __slots__ = ("attempts", "logged", "method", "model", "path", "request_id", "start")

    def __init__(self, method: str, path: str, model: str | None) -> None:
        self.request_id = new_request_id()
        self.method = method
        self.path = path
        self.model = model
        self.start = time.perf_counter()
        self.attempts = 1
        self.logged = False

    def done(self, status: int | str, tokens: int | None = None) -> None:
        if self.logged:
            return
        self.logged = True
        if not logger.isEnabledFor(logging.INFO):
            return
        duration_ms = round((time.perf_counter() - self.start) * 1000, 1)
        fields: dict[str, Any] = {"request_id": self.request_id, "method": self.method, "path": self.path,
                                  "model": self.model, "status": status, "duration_ms": duration_ms,
                                  "tokens": tokens, "attempts": self.attempts}
        logger.info("request %s %s %s model=%s status=%s duration_ms=%.1f tokens=%s attempts=%d",
                    self.request_id, self.method, self.path, self.model, status, duration_ms, tokens,
                    self.attempts, extra=fields)

    def failed(self, exc: BaseException) -> None:
        self.done(getattr(exc, "status", None) or type(exc).__name__)


def eval_count(obj: Any) -> int | None:
    if isinstance(obj, dict):
        value = obj.get("eval_count")
        if isinstance(value, int):
            return value
    return None
