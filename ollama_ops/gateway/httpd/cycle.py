"""One request and its response: the ASGI `receive` / `send` pair and the hot path's extensions (`sollama.push`,
`sollama.drain`, `sollama.on_disconnect`; the package docstring says what they do)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from functools import lru_cache
from http import HTTPStatus
from typing import Any, Protocol

from ollama_ops.client.protocol import settle

_STATUS = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST = b"0\r\n\r\n"


class Conn(Protocol):
    """What a cycle uses of its connection (`conn.HttpConn`)."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    lost: bool
    paused: bool

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def body_read(self, size: int) -> None: ...

    def finished(self, cycle: Cycle) -> None: ...


@lru_cache(maxsize=1)
def _date_of(second: int) -> bytes:
    return b"date: %s\r\n" % formatdate(second, usegmt=True).encode()


def date_line() -> bytes:
    """The `date:` header line, made once a second."""
    return _date_of(int(time.time()))


def status_line(status: int) -> bytes:
    return _STATUS.get(status) or b"HTTP/1.1 %d \r\n" % status


class Cycle:
    """One request and its response: the ASGI `receive` / `send` pair and the hot path's extensions."""

    __slots__ = ("body", "body_done", "chunked", "complete", "conn", "continue_", "head_only", "keep_alive",
                 "length", "more_body", "on_lost", "scope", "started", "task", "waiter")

    def __init__(self, conn: Conn, scope: dict, keep_alive: bool, expect_continue: bool) -> None:
        self.conn = conn
        self.scope = scope
        scope["extensions"] = {"sollama.push": self.push, "sollama.drain": conn.drain,
                               "sollama.on_disconnect": self.on_disconnect}
        self.keep_alive = keep_alive
        self.continue_ = expect_continue
        self.head_only = scope["method"] == "HEAD"
        self.body: deque[bytes] = deque()
        self.more_body = True  # the request's body has more to come
        self.body_done = False  # the app got the last of the body
        self.started = False  # the response head was written
        self.complete = False  # the response's last byte was written
        self.chunked = False
        self.length: int | None = None  # Content-Length bytes still to write
        self.waiter: asyncio.Future[None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.task: asyncio.Task | None = None

    # -- from the connection --------------------------------------------------------------------------------
    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        settle(waiter)

    def lost(self) -> None:
        self.wake()
        callback, self.on_lost = self.on_lost, None
        if callback is not None and not self.complete:
            callback()

    # -- ASGI -----------------------------------------------------------------------------------------------
    async def receive(self) -> dict:
        conn = self.conn
        while True:
            body = self.body
            if body:
                data = body.popleft() if len(body) == 1 else b"".join(body)
                body.clear()
                conn.body_read(len(data))
                self.body_done = not self.more_body
                return {"type": "http.request", "body": data, "more_body": self.more_body}
            if not self.more_body and not self.body_done:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if conn.lost or self.complete:
                return {"type": "http.disconnect"}
            if self.continue_ and not self.body_done and not self.started:
                self.continue_ = False
                conn.write(CONTINUE)
            self.waiter = conn.loop.create_future()
            await self.waiter

    async def send(self, message: dict) -> None:
        conn = self.conn
        if conn.paused and not conn.lost:
            await conn.drain()
        if conn.lost:
            return  # the caller is gone; what it would have got is dropped (as under any ASGI server)
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind}")
            self._start(message["status"], message.get("headers") or ())
        elif self.complete:
            raise RuntimeError(f"{kind} after the response was complete")
        elif kind != "http.response.body":
            raise RuntimeError(f"expected http.response.body, got {kind}")
        else:
            self._body(message.get("body", b""), message.get("more_body", False))

    def push(self, data: bytes, last: bool = False) -> bool:
        """Write body bytes now (the response was started); `last`: they end it (one write with the end of a
        chunked body). False: the caller's socket buffer is full, wait for `drain` before pushing more."""
        conn = self.conn
        if conn.lost or self.complete:
            return True
        if self.chunked and data and not last and not self.head_only:  # the hot case: a chunk of a stream
            conn.transport.write(b"%x\r\n%s\r\n" % (len(data), data))  # type: ignore[union-attr]
        else:
            self._body(data, not last)
        return not conn.paused

    def release(self) -> None:
        """The app's task ended: drop what ties this cycle, its scope, the app's callback and the task into a
        reference cycle, so that all of it is freed at once by reference counting. Left alone, every request
        would leave a cycle for the collector, whose pauses (1-6 ms every few dozen requests under load) land
        on the requests in flight."""
        self.scope.pop("extensions", None)
        self.on_lost = None
        self.task = None
        self.waiter = None

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        self.on_lost = callback
        if self.conn.lost:
            self.lost()

    # -- writing --------------------------------------------------------------------------------------------
    def _start(self, status: int, headers) -> None:
        self.started = True
        self.continue_ = False
        parts = [status_line(status), date_line()]
        te = False
        for name, value in headers:
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name or b":" in name:
                raise RuntimeError(f"invalid response header {name!r}")
            lower = name.lower()
            if lower == b"content-length":
                self.length = int(value)
            elif lower == b"transfer-encoding":
                te = True
                self.chunked = b"chunked" in value.lower()
            elif lower == b"connection" and value.lower() == b"close":
                self.keep_alive = False
            parts.append(b"%s: %s\r\n" % (name, value))
        if self.length is None and not te and not self.head_only and status >= 200 and status not in (204, 304):
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self.conn.write(b"".join(parts))

    def _body(self, body: bytes, more: bool) -> None:
        conn = self.conn
        if self.head_only:
            pass
        elif self.chunked:
            if body:
                conn.write(b"%x\r\n%s\r\n%s" % (len(body), body, b"" if more else _LAST))
            elif not more:
                conn.write(_LAST)
        elif body:
            if self.length is not None:
                self.length -= len(body)
                if self.length < 0:
                    raise RuntimeError("response body longer than its Content-Length")
            conn.write(body)
        if not more:
            if self.length and not self.head_only:
                raise RuntimeError("response body shorter than its Content-Length")
            self.complete = True
            self.wake()
            conn.finished(self)



def scope_extension(scope: dict, name: str) -> Any:
    """One of this server's extensions (None under another ASGI server)."""
    ext = scope.get("extensions")
    return ext.get(name) if ext else None
