"""The gateway's HTTP/1.1 server: an ASGI server on asyncio protocols with llhttp's C request parser (httptools),
in the place of uvicorn.

Why its own: measured with `benchmarks/gateway_overhead.py` (a 16-chunk stream at concurrency 64 on 2 cores), a
bare relay under uvicorn already added +3.9 ms to the inter-chunk gap p99 and spent 0.34 ms of CPU per request,
where the same relay on asyncio protocols, each upstream chunk written downstream from the upstream socket's
read callback, added +0.07 ms and spent 0.15 ms. Every chunk through an ASGI `send` wakes the handler's task once;
here the hot path may skip that with two ASGI scope extensions:

- `sollama.push(data, last=False) -> bool`: write response body bytes now, from any callback (`last`: they end
  the response; False back: the caller's socket buffer is full, `await sollama.drain()` before pushing more);
- `sollama.on_disconnect(callback)`: called once, at once, when the caller's connection is lost while its
  response is unfinished (instead of a task per request waiting on `receive()` for `http.disconnect`).

Everything else is plain ASGI 3 (the FastAPI operations routes run on it unchanged): keep-alive, pipelined
requests served in order, `Expect: 100-continue`, chunked or sized responses, HEAD, flow control both ways,
request heads over 64 KiB refused with 431, malformed requests with 400, idle keep-alive connections closed after
`keep_alive_s`. At the first SIGTERM/SIGINT it stops accepting, lets unfinished responses run for up to
`drain_timeout` seconds (`on_signal` runs first: the gateway refuses its queue), then closes every connection.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from ollama_ops.client.protocol import no_delay

HEAD_LIMIT = 64 * 1024  # request line + headers
_BODY_HIGH = 1024 * 1024  # buffered request body past which the socket is not read until the app reads it
_PIPELINE_MAX = 16  # parsed requests waiting behind the one being answered, past which reading pauses
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_STATUS = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST = b"0\r\n\r\n"


def _status_line(status: int) -> bytes:
    return _STATUS.get(status) or b"HTTP/1.1 %d \r\n" % status


class _Refuse(Exception):
    """A request the parser must stop at (the status to answer with)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Cycle:
    """One request and its response: the ASGI `receive` / `send` pair and the hot path's extensions."""

    __slots__ = ("body", "body_done", "chunked", "complete", "conn", "continue_", "head_only", "keep_alive",
                 "length", "more_body", "on_lost", "scope", "started", "task", "waiter")

    def __init__(self, conn: HttpConn, scope: dict, keep_alive: bool, expect_continue: bool) -> None:
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
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

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
                conn.write(_CONTINUE)
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

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        self.on_lost = callback
        if self.conn.lost:
            self.lost()

    # -- writing --------------------------------------------------------------------------------------------
    def _start(self, status: int, headers) -> None:
        self.started = True
        self.continue_ = False
        parts = [_status_line(status), self.conn.server.date_line()]
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


class HttpConn(asyncio.Protocol):
    """One caller's connection: requests parsed as they come, answered one at a time, in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        self.cycles: deque[Cycle] = deque()  # cycles[0] is answered; the last one is being parsed
        self.parsing: Cycle | None = None
        self.lost = False
        self.paused = False  # our writes: the caller's socket buffer is full
        self.drainers: list[asyncio.Future[None]] = []
        self.reading = True
        self.buffered = 0  # request body bytes parsed, not yet read by the app
        self.head_bytes = 0
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.idle_timer: asyncio.TimerHandle | None = None
        self.upgrade = False

    # -- asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self.local = (str(sock[0]), int(sock[1])) if isinstance(sock, tuple) else None
        self.server.connections.add(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.upgrade:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.upgrade = True  # no protocol switch here: the request is answered, then the connection closed
            if self.parsing is not None:
                self.parsing.keep_alive = False
                self.parsing.more_body = False
                self.parsing.wake()
        except _Refuse as exc:
            self._refuse(exc.status, str(exc))
        except httptools.HttpParserError as exc:
            cause = exc.__context__ if isinstance(exc.__context__, _Refuse) else None
            if cause is not None:
                self._refuse(cause.status, str(cause))
            else:
                self._refuse(400, "Invalid HTTP request received.")

    def eof_received(self) -> bool | None:
        return None  # half-closed by the caller: close (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.connections.discard(self)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        for cycle in list(self.cycles):
            cycle.lost()
        self._wake_drainers()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_drainers()

    # -- httptools callbacks --------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)
        if self.head_bytes > HEAD_LIMIT:
            raise _Refuse(414, "Request-URI too long.")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > HEAD_LIMIT:
            raise _Refuse(431, "Request header fields too large.")
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        try:
            parsed = httptools.parse_url(self.url)
            raw_path = parsed.path or b"/"
            path = unquote(raw_path.decode("ascii"))
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError, ValueError) as exc:
            raise _Refuse(400, "Invalid HTTP request received.") from exc
        scope = {"type": "http", "asgi": _ASGI, "http_version": parser.get_http_version(),
                 "server": self.local, "client": self.client, "scheme": "http",
                 "method": parser.get_method().decode("ascii"), "root_path": "", "path": path,
                 "raw_path": raw_path, "query_string": parsed.query or b"", "headers": self.headers, "state": {}}
        expect = False
        for name, value in self.headers:
            if name == b"expect" and value.lower() == b"100-continue":
                expect = True
        cycle = Cycle(self, scope, parser.should_keep_alive() and not self.server.stopping, expect)
        self.parsing = cycle
        self.cycles.append(cycle)
        if len(self.cycles) == 1:
            self._run(cycle)
        elif len(self.cycles) > _PIPELINE_MAX:
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.parsing
        if cycle is None or cycle.complete or self.lost:
            return  # the answer was given without the body: it is read and dropped
        cycle.body.append(body)
        self.buffered += len(body)
        if self.buffered > _BODY_HIGH:
            self._pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        cycle = self.parsing
        if cycle is None:
            return
        cycle.more_body = False
        cycle.wake()
        if cycle.complete:
            self._next(cycle)

    # -- the exchange ---------------------------------------------------------------------------------------
    def _run(self, cycle: Cycle) -> None:
        cycle.task = self.loop.create_task(self.server.run_app(cycle))

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the caller's socket takes more (or the caller is gone)."""
        if self.paused and not self.lost:
            waiter = self.loop.create_future()
            self.drainers.append(waiter)
            await waiter

    def _wake_drainers(self) -> None:
        drainers, self.drainers = self.drainers, []
        for waiter in drainers:
            if not waiter.done():
                waiter.set_result(None)

    def body_read(self, size: int) -> None:
        self.buffered -= size
        if not self.reading and self.buffered < _BODY_HIGH // 4 and len(self.cycles) <= _PIPELINE_MAX:
            self._resume_reading()

    def finished(self, cycle: Cycle) -> None:
        """A response's last byte was written: the next request's turn, or the connection's end."""
        if not cycle.keep_alive:
            if self.transport is not None:
                self.transport.close()
            return
        if not cycle.more_body:
            self._next(cycle)
        # else: the rest of the request's body is read and dropped; on_message_complete moves on

    def _next(self, cycle: Cycle) -> None:
        if not self.cycles or self.cycles[0] is not cycle:
            return
        self.cycles.popleft()
        self.buffered = sum(len(b) for c in self.cycles for b in c.body)
        if self.server.stopping:
            if self.transport is not None:
                self.transport.close()
            return
        if not self.reading:
            self._resume_reading()
        if self.cycles:
            self._run(self.cycles[0])
        else:
            self._arm_idle()

    def _pause_reading(self) -> None:
        if self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self.reading and self.transport is not None and not self.lost:
            self.reading = True
            self.transport.resume_reading()

    def _arm_idle(self) -> None:
        self.idle_timer = self.loop.call_later(self.server.keep_alive_s, self._idle)

    def _idle(self) -> None:
        self.idle_timer = None
        if not self.cycles and self.transport is not None:
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """A request that cannot be parsed: nothing more is read. A bad head is answered with `status` (when no
        earlier request is still being answered) and the connection closed; a bad body ends the connection (its
        app sees a disconnect); a bad request behind others in the pipeline closes it after their answers."""
        self.upgrade = True
        if self.cycles and self.parsing is not self.cycles[0] and self.parsing in self.cycles:
            for cycle in self.cycles:
                cycle.keep_alive = False
            return
        if not self.cycles:
            body = message.encode()
            self.write(b"%s%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                       b"connection: close\r\n\r\n%s" % (_status_line(status), self.server.date_line(),
                                                            len(body), body))
        if self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        """The server stops: an idle connection closes now, a busy one after its current response."""
        if not self.cycles:
            if self.transport is not None:
                self.transport.close()
        else:
            for cycle in self.cycles:
                cycle.keep_alive = False


class HttpServer:
    """Serve `app` (ASGI 3) on listening sockets until the first SIGTERM/SIGINT, then drain and stop."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, drain_timeout: float = 10.0,
                 keep_alive_s: float = 75.0, startup: Callable[[], Awaitable[None]] | None = None,
                 shutdown: Callable[[], Awaitable[None]] | None = None,
                 on_signal: Callable[[int], None] | None = None) -> None:
        self.app = app
        self.drain_timeout = drain_timeout
        self.keep_alive_s = keep_alive_s
        self._startup, self._shutdown, self._on_signal = startup, shutdown, on_signal
        self.connections: set[HttpConn] = set()
        self.signals: list[int] = []
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._stop: asyncio.Event | None = None
        self._date = b""
        self._date_at = 0.0

    def date_line(self) -> bytes:
        now = time.time()
        if now - self._date_at >= 1.0:
            self._date_at = float(int(now))
            self._date = b"date: %s\r\n" % formatdate(now, usegmt=True).encode()
        return self._date

    async def run_app(self, cycle: Cycle) -> None:
        try:
            await self.app(cycle.scope, cycle.receive, cycle.send)
        except asyncio.CancelledError:
            if not cycle.conn.lost:
                cycle.conn.transport.close()  # type: ignore[union-attr]
            raise
        except Exception as exc:  # noqa: BLE001 - the app failed: a 500 (or a cut connection), never a traceback
            sys.stderr.write(f"gateway: {cycle.scope['method']} {cycle.scope['path'][:200]} failed: "
                             f"{type(exc).__name__}: {str(exc)[:200]}\n")
            if not cycle.started and not cycle.conn.lost:
                try:
                    cycle.keep_alive = False
                    await cycle.send({"type": "http.response.start", "status": 500,
                                      "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                                  (b"content-length", b"21")]})
                    await cycle.send({"type": "http.response.body", "body": b"Internal Server Error"})
                except RuntimeError:
                    pass
            elif not cycle.complete and cycle.conn.transport is not None:
                cycle.conn.transport.close()
        else:
            if not cycle.complete and not cycle.conn.lost and cycle.conn.transport is not None:
                cycle.conn.transport.close()  # the app returned without finishing its answer

    def _signal(self, sig: int) -> None:
        self.signals.append(sig)
        if len(self.signals) == 1:
            if self._on_signal is not None:
                self._on_signal(sig)
            if self._stop is not None:
                self._stop.set()
        else:
            self.drain_timeout = 0  # a second signal: stop waiting for in-flight answers

    def request_stop(self) -> None:
        """Stop as at a signal (from any thread)."""
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)

    async def serve(self, sockets: list, *, signals: bool = True) -> None:
        """Serve until the first SIGTERM/SIGINT (with `signals`) or `request_stop()`, then drain and return."""
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._startup is not None:
            await self._startup()
        listeners = [await self.loop.create_server(lambda: HttpConn(self), sock=sock, backlog=2048)
                     for sock in sockets]
        handled = (signal.SIGINT, signal.SIGTERM) if signals else ()
        for sig in handled:
            self.loop.add_signal_handler(sig, self._signal, sig)
        try:
            await self._stop.wait()
            self.stopping = True
            for listener in listeners:
                listener.close()
            for conn in list(self.connections):
                conn.shutdown()
            start = self.loop.time()
            while self.connections and self.loop.time() < start + self.drain_timeout:  # a 2nd signal sets it 0
                await asyncio.sleep(0.02)
            tasks = [c.task for conn in self.connections for c in conn.cycles if c.task is not None]
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()  # the caller's tasks see a disconnect and close their upstreams
            if tasks:
                await asyncio.wait(tasks, timeout=2.0)
        finally:
            for sig in handled:
                self.loop.remove_signal_handler(sig)
            for listener in listeners:
                listener.close()
            if self._shutdown is not None:
                await self._shutdown()

    def run(self, sockets: list) -> None:
        import os

        import uvloop
        prof = None
        if os.environ.get("EXP_PROF"):
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(self.serve(sockets))
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.environ["EXP_PROF"])


def scope_extension(scope: dict, name: str) -> Any:
    """One of this server's extensions (None under another ASGI server)."""
    ext = scope.get("extensions")
    return ext.get(name) if ext else None
