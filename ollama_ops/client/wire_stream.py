"""The streaming layer's http:// transport (`client.stream.StreamSession` picks it for plain http://): keep-alive
connections as `asyncio.Protocol`s with llhttp's C response parser (httptools, which uvicorn already brings).

Why not aiohttp here: profiled in the gateway (a 16-chunk stream relayed at concurrency 64), aiohttp's request
machinery (ClientRequest, headers multidicts, the writer, the connector) and its StreamReader cost more CPU per
request than everything else on the gateway's side of the upstream. Here a request is one `transport.write` of
pre-built bytes, and each body chunk is handed to the one waiting reader as the parser produces it (no copy into a
stream buffer). The figures are in docs/gateway.md ("Overhead").

Bodies streamed up (an async iterable) and HEAD requests go over aiohttp (`StreamSession` does that).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httptools

from ollama_ops.client.protocol import no_delay, settle, unreachable
from ollama_ops.errors import RequestTimeout, ServerError

_HIGH_WATER = 256 * 1024  # buffered body bytes past which the socket is not read until the reader catches up


class Headers(dict[str, str]):
    """Response headers with case-insensitive lookups (stored lower-case; the last of a repeated name wins)."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower()) if isinstance(name, str) else False


class WireConn(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.busy = False
        self.sink: Callable[[bytes, bool], bool] | None = None
        self._reset()

    def _reset(self) -> None:
        self.head: asyncio.Future[int] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.held = False  # reading stopped because the sink is full
        self.headers = Headers()
        self.status = 0
        self.complete = False
        self.keep_alive = False
        self.exc: BaseException | None = None
        self.received = False  # any byte of this exchange's answer
        self.rx = 0.0  # loop time of the last bytes received
        self.timer: asyncio.TimerHandle | None = None
        self.head_by: float | None = None  # loop time by which the answer's head must have come

    # -- asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport)

    def data_received(self, data: bytes) -> None:
        self.rx = self.loop.time()
        self.received = True
        if not self.busy:  # bytes nobody asked for: this connection cannot be trusted any more
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ServerError(f"the upstream's answer is not valid HTTP ({exc})"))
            self.close()
        if self.sink is not None and self.chunks:
            chunks = self.chunks
            if len(chunks) == 1 and not self.paused and self.exc is None:  # the common case, inline
                try:
                    more = self.sink(chunks.popleft(), self.complete)
                except Exception as exc:  # noqa: BLE001 - as in deliver()
                    self.sink = None
                    self._fail(exc)
                    return
                if not more:
                    self._hold()
            else:
                self.deliver()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy and not self.complete:
            self._fail(ServerError(f"the connection broke mid-response ({type(exc).__name__ if exc else 'closed'})"))

    # -- httptools callbacks --------------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue: the real head follows
            self.headers = Headers()
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()  # (llhttp forgets it once the message completes)
        head = self.head
        if head is not None and not head.done():
            head.set_result(status)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        if self.sink is not None:
            return  # data_received hands it over once the parser is done with this read
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0:  # the end of a 1xx message
            return
        self.complete = True
        self._wake()

    # -- the exchange ---------------------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        settle(waiter)

    def _fail(self, exc: BaseException) -> None:
        if self.exc is None:
            self.exc = exc
        head = self.head
        if head is not None and not head.done():
            head.set_exception(exc)
        self._wake()

    def start(self, request: bytes, read_timeout: float | None, deadline: float | None,
              head_by: float | None = None) -> asyncio.Future[int]:
        self._reset()
        self.busy = True
        self.head = self.loop.create_future()
        self.read_timeout, self.deadline, self.head_by = read_timeout, deadline, head_by
        self.rx = self.loop.time()
        self._arm()
        assert self.transport is not None
        self.transport.write(request)
        return self.head

    def _arm(self) -> None:
        at = None
        if self.read_timeout is not None:
            at = self.rx + self.read_timeout
        if self.deadline is not None:
            at = self.deadline if at is None else min(at, self.deadline)
        if self.head_by is not None and not self.status:
            at = self.head_by if at is None else min(at, self.head_by)
        self.timer = None if at is None else self.loop.call_at(at, self._check_timeout)

    def _check_timeout(self) -> None:
        self.timer = None
        if not self.busy or self.complete:
            return
        now = self.loop.time()
        past_deadline = self.deadline is not None and now >= self.deadline
        no_head = self.head_by is not None and not self.status and now >= self.head_by
        if past_deadline or no_head or (self.read_timeout is not None and now - self.rx >= self.read_timeout):
            self._fail(RequestTimeout("the exchange ran past its total timeout" if past_deadline else
                                      "no answer head from the upstream in time" if no_head else
                                      "no byte from the upstream in time"))
            self.close()
            return
        self._arm()  # bytes came meanwhile: wait again from the last of them

    def deliver(self) -> None:
        """Hand what was read to the sink, at once, from the read callback (`WireResponse.pipe`), saying whether it
        is the end of the body."""
        chunks, sink = self.chunks, self.sink
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        try:
            more = sink(data, self.complete and self.exc is None)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - the sink refused the bytes: the exchange fails with its error
            self.sink = None
            self._fail(exc)
            return
        if not more:
            self._hold()

    def _hold(self) -> None:
        """The sink is full: stop reading until `pipe` saw its drain."""
        if not self.held and self.transport is not None:
            self.held = True
            self.transport.pause_reading()
            self._wake()

    async def next_chunk(self) -> bytes | None:
        """The next body chunk, None at the end; raises the exchange's error."""
        while True:
            chunks = self.chunks
            if chunks:
                # what came together goes on together (one write downstream, not one per piece)
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                if len(chunks):
                    chunks.clear()
                self.buffered -= len(data)
                if self.paused and self.buffered < _HIGH_WATER // 4 and self.transport is not None:
                    self.paused = False
                    self.transport.resume_reading()
                return data
            if self.exc is not None:
                raise self.exc
            if self.complete:
                return None
            waiter = self.waiter = self.loop.create_future()
            await waiter

    def finish(self) -> bool:
        """The exchange is over; True when the connection can take the next one."""
        self.busy = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        reusable = (self.complete and self.exc is None and not self.closed and not self.chunks
                    and not self.held and self.keep_alive)
        if not reusable:
            self.close()
        return reusable

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class WireResponse:
    """`client.stream.RawResponse` over a `WireConn`."""

    __slots__ = ("_conn", "_pool", "headers", "status")

    def __init__(self, conn: WireConn, pool: WirePool) -> None:
        self._conn: WireConn | None = conn
        self._pool = pool
        self.status = conn.status
        self.headers = conn.headers

    def chunks(self) -> WireResponse:
        return self

    def __aiter__(self) -> WireResponse:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        data = await conn.next_chunk()
        if data is None:
            raise StopAsyncIteration
        return data

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self]
        return b"".join(parts)

    async def pipe(self, sink: Callable[[bytes, bool], bool], drain: Callable[[], Awaitable[None]]) -> None:
        """Hand the body to `sink(data, last)` as it arrives, from the socket's read callback (no task wake-up per
        chunk), until its end; `last` is True when these bytes end the body (a body whose end comes alone gets
        no call for it). `sink` returning False stops reading until `drain()` returns. Raises the exchange's
        error, or the sink's."""
        conn = self._conn
        if conn is None:
            return
        conn.sink = sink
        try:
            while True:
                if conn.chunks and conn.exc is None:
                    conn.deliver()  # what came with the head, before the sink was set
                if conn.exc is not None:
                    raise conn.exc
                if conn.complete:
                    return
                if conn.held:
                    await drain()
                    conn.held = False
                    if not conn.closed and conn.transport is not None:
                        conn.transport.resume_reading()
                    continue
                waiter = conn.waiter = conn.loop.create_future()
                await waiter
        finally:
            conn.sink = None

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.finish():
            self._pool.idle.append(conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.exc = conn.exc or ServerError("closed")
            conn.finish()
            conn.close()


class WirePool:
    """Keep-alive connections to one http:// host (grows to the concurrency in use)."""

    def __init__(self, host: str, port: int, netloc: str, base_url: str, connect_timeout: float | None,
                 read_timeout: float | None, headers: dict[str, str]) -> None:
        self.host, self.port, self.netloc, self.base_url = host, port, netloc, base_url
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.idle: list[WireConn] = []
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    def _idle(self) -> WireConn | None:
        """A kept-alive connection that is still open, if any (no coroutine: the common case)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self) -> WireConn:
        """A new connection."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(lambda: WireConn(loop), self.host, self.port),
                                             self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise unreachable(self.base_url, exc) from exc
        return conn

    async def open(self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None,
                   total: float | None, head_timeout: float | None = None) -> WireResponse:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.netloc}\r\n{self._fixed}{extra}"
                f"Content-Length: {len(body) if body else 0}\r\n\r\n").encode("latin-1")
        request = head + body if body else head
        for attempt in (1, 2):
            conn = self._idle()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            loop = conn.loop
            now = loop.time()
            fut = conn.start(request, self.read_timeout, None if total is None else now + total,
                             None if head_timeout is None else now + head_timeout)
            try:
                await fut
            except ServerError:
                conn.finish()
                conn.close()
                # A kept-alive connection the server had closed while idle: it read nothing of this request
                # (no byte of an answer came), so sending it once more on a new connection is safe.
                if attempt == 1 and reused and not conn.received:
                    continue
                raise
            except BaseException:
                conn.finish()
                conn.close()
                raise
            return WireResponse(conn, self)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
