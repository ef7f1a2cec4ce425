"""One caller's connection: requests parsed as they come (llhttp), answered one at a time in order, flow control
both ways, refusals for what cannot be parsed."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol
from urllib.parse import unquote

import httptools

from ollama_ops.client.protocol import no_delay, settle
from ollama_ops.gateway.httpd.cycle import Cycle, date_line, status_line

HEAD_LIMIT = 64 * 1024  # request line + headers
_BODY_HIGH = 1024 * 1024  # buffered request body past which the socket is not read until the app reads it
_PIPELINE_MAX = 16  # parsed requests waiting behind the one being answered, past which reading pauses
_ASGI = {"version": "3.0", "spec_version": "2.3"}


class _Refuse(Exception):
    """A request the parser must stop at (the status to answer with)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Server(Protocol):
    """What a connection uses of its server (`server.HttpServer`)."""

    loop: asyncio.AbstractEventLoop
    connections: set[HttpConn]
    stopping: bool
    keep_alive_s: float

    def run_app(self, cycle: Cycle) -> Coroutine[Any, Any, None]: ...


class HttpConn(asyncio.Protocol):
    """One caller's connection: requests parsed as they come, answered one at a time, in order."""

    def __init__(self, server: Server) -> None:
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
        cycles, self.cycles = self.cycles, deque()
        for cycle in cycles:
            cycle.lost()
        self._wake_drainers()
        # the parser and the transport point back at this protocol: dropped, the connection is freed by
        # reference counting (not left for the collector)
        self.parser = self.transport = self.parsing = None  # type: ignore[assignment]

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
            settle(waiter)

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
                       b"connection: close\r\n\r\n%s" % (status_line(status), date_line(), len(body), body))
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
