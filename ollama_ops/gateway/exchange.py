"""One proxied request's bookkeeping (`Exchange`) and the whole-error answer in the caller's dialect
(`send_error`): what the request path, the dispatchers (one host or the fleet) and the runtime's `finish` share,
kept apart so that none of them imports another for it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ollama_ops.core.gateway import dialect


@dataclass(slots=True)
class Exchange:
    """One request's bookkeeping for the access log, metrics and usage."""

    request_id: str
    method: str
    path: str
    client: str
    t0: float = field(default_factory=time.perf_counter)
    started: float = field(default_factory=time.time)
    area: str = "api"
    route: str = "other"
    kind: str = ""
    key: str = "-"
    model: str = "-"
    status: int = 0
    code: int = 0  # the outcome for logs/metrics: status, or 502/504 when a started stream failed
    queue_s: float = 0.0
    ttft_s: float | None = None
    duration_s: float = 0.0
    prompt_tokens: int = 0
    output_tokens: int = 0
    stream: bool = False
    error: str | None = None
    prompt: Any = None
    authed: bool = False  # the key check passed (only such requests are usage)
    gone: bool = False  # the caller disconnected
    finished: bool = False  # the last byte was handed to the server


def header(scope: dict, name: bytes) -> str | None:
    """A request header's value from an ASGI scope (the first one), or None."""
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


async def send_error(ex: Exchange, send, status: int, message: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole error response in the caller's dialect."""
    body = dialect.error_body(ex.area, status, message)
    ex.status = ex.code = status
    ex.error = message
    ex.finished = True
    hdrs = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode()),
            (b"x-request-id", ex.request_id.encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_whole(ex: Exchange, send, status: int, ctype: str, body: bytes, head: list) -> None:
    """A whole (non-streamed) answer with `head`'s extra headers."""
    ex.status = ex.code = status
    ex.finished = True
    ex.ttft_s = time.perf_counter() - ex.t0
    head = [*head, (b"content-type", (ctype or "application/json").encode()),
            (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})
