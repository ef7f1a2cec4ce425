"""The bench's `Transport` (`client.transport`) for plain http://: a minimal HTTP/1.1 client on raw asyncio (the
https:// one is `client.transport.StreamTransport`, over the library's streaming layer).

Why not aiohttp here: on Python < 3.12 aiohttp writes a request from a task of its own on a later loop turn, and a
chunk's arrival can only be clocked when the reading task resumes, after every callback already queued; at
concurrency 32 both add about a millisecond to TTFT. Here each keep-alive connection is an `asyncio.Protocol`
on an `edges.stamped.StampedTransport` (TCP_NODELAY): the request bytes (head + pre-serialized body, built once
per body) go out in one socket write and the send time is read right before it; the response is parsed in
`data_received` (status line, headers, chunked or Content-Length or read-until-close body), split into NDJSON
lines, and every text line is stamped with the time its bytes reached this host: the kernel's receive timestamp
where there is one (Linux), so a chunk that waited in the socket while the loop served 31 other streams is not
clocked late; otherwise the `perf_counter()` of the read. One Future per request carries the final object or a
`Failure` with the same kinds the aiohttp path reports (listed in `client.transport`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from ollama_ops.client.protocol import error_message, no_delay, out_of_files
from ollama_ops.client.transport import (
    QUEUE_WAIT_HEADER,
    Failure,
    feed_lines,
    queue_wait_s,
    slow_line,
    status_kind,
    wait_until,
)
from ollama_ops.core.bench.sse import SseDecoder, StreamError
from ollama_ops.edges.stamped import StampedTransport, open_stamped

_ERROR_BODY_CAP = 64 * 1024
_HEAD_CAP = 64 * 1024
_LINE_CAP = 4096  # a chunk-size or trailer line longer than this is not HTTP

# parser states
_HEAD, _SIZE, _DATA, _CRLF, _TRAILER, _LENGTH, _UNTIL_CLOSE = range(7)


class WireConnection(asyncio.Protocol):
    """One keep-alive connection; at most one request at a time."""

    def __init__(self, client: WireClient | None = None) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.fut: asyncio.Future[dict[str, Any]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._times: list[float] = []
        self._stamped: StampedTransport | None = None
        self._now = 0.0  # arrival time of the bytes being parsed
        self._sse: SseDecoder | None = None  # the OpenAI APIs' server-sent events, else NDJSON
        self._sent: list[float | None] = [0.0, None]  # the request's [send time, gateway queue wait]
        self._reset()

    def _reset(self) -> None:
        self._state = _HEAD
        self._buf = b""
        self._left = 0
        self._status = 0
        self._keep_alive = True
        self._rest = b""
        self._final: dict[str, Any] | None = None
        self._err = b""

    # -- asyncio.Protocol -------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._stamped = transport if isinstance(transport, StampedTransport) else None
        no_delay(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.fut is None:
            return
        if self._state == _UNTIL_CLOSE:
            self._message_end()
        else:
            detail = f" ({type(exc).__name__})" if exc is not None else ""
            self._fail(Failure("disconnect", f"connection broke mid-stream{detail}"), close=False)

    def data_received(self, data: bytes) -> None:
        now = self._now = self._stamped.rx_ns / 1e9 if self._stamped is not None else time.perf_counter()
        if self.fut is None:  # bytes nobody asked for: this connection cannot be trusted any more
            self._close()
            return
        if self._buf:
            data = self._buf + data
            self._buf = b""
        try:
            self._feed(data, now)
        except Failure as exc:
            self._fail(exc)

    # -- requests ---------------------------------------------------------------------------------------------

    def start(self, request: bytes, times: list[float], timeout: float | None, sse: bool = False,
              sent: list[float | None] | None = None) -> float:
        """Write one request; returns the time its bytes went to the socket (also put in `sent[0]`; `sent[1]`
        gets the gateway's queue wait from the answer's head). `self.fut` resolves to the final object or fails
        with a `Failure`. `sse`: the answer is server-sent events (the OpenAI APIs)."""
        loop = asyncio.get_running_loop()
        self._reset()
        self._sse = SseDecoder() if sse else None
        self._times = times
        self.fut = loop.create_future()
        if timeout is not None:
            self._timer = loop.call_later(timeout, self._on_timeout)
        assert self.transport is not None
        self._sent = sent if sent is not None else [0.0, None]
        now = self._sent[0] = time.perf_counter()
        self.transport.write(request)
        return now

    def abort(self) -> None:
        """Give up on the request in flight (cancelled): the connection is not reused."""
        self._cancel_timer()
        self.fut = None
        self._close(abort=True)

    def _on_timeout(self) -> None:
        self._timer = None
        self._fail(Failure("timeout", "no complete answer within the per-request timeout"), abort=True)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self, abort: bool = False) -> None:
        self.closed = True
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def _fail(self, exc: Failure, close: bool = True, abort: bool = False) -> None:
        fut, self.fut = self.fut, None
        self._cancel_timer()
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        if close:
            self._close(abort)

    def _message_end(self) -> None:
        """The whole response was read."""
        if self._status >= 400:
            raise_it = Failure(status_kind(self._status, self._err),
                               f"HTTP {self._status}: {error_message(self._err)}")
            self._fail(raise_it, close=not self._keep_alive)
            if self._keep_alive and not self.closed:
                self._release()
            return
        if self._sse is not None:
            try:
                self._final = self._sse.end(self._now, self._times)
            except StreamError as exc:
                self._fail(Failure(exc.kind, str(exc)))
                return
        elif self._rest.strip():
            rest, self._rest = self._rest, b""
            try:
                final = slow_line(rest, self._now, self._times)
            except Failure as exc:
                self._fail(exc)
                return
            if final is not None and self._final is None:
                self._final = final
        if self._final is None:
            self._fail(Failure("disconnect", "the stream ended before its final chunk"))
            return
        fut, self.fut = self.fut, None
        self._cancel_timer()
        if fut is not None and not fut.done():
            fut.set_result(self._final)
        if not self._keep_alive:
            self._close()
        elif not self.closed:
            self._release()

    def _release(self) -> None:
        self._reset()
        if self.client is not None:
            self.client.idle.append(self)

    # -- parsing ----------------------------------------------------------------------------------------------

    def _feed(self, data: bytes, now: float) -> None:
        pos, n = 0, len(data)
        while pos < n:
            if self.fut is None:  # done (or failed) and bytes remain: a response nobody asked for
                self._close()
                return
            state = self._state
            if state == _DATA or state == _LENGTH:
                take = min(self._left, n - pos)
                self._body(data[pos:pos + take] if take != n else data, now)
                pos += take
                self._left -= take
                if self._left == 0:
                    if state == _DATA:
                        self._state = _CRLF
                    else:
                        self._message_end()
            elif state == _SIZE:
                i = data.find(b"\r\n", pos)
                if i < 0:
                    self._keep(data, pos, _LINE_CAP)
                    return
                try:
                    size = int(data[pos:i].split(b";", 1)[0], 16)
                except ValueError:
                    raise Failure("disconnect", "invalid HTTP chunk size") from None
                pos = i + 2
                if size:
                    self._left = size
                    self._state = _DATA
                else:
                    self._state = _TRAILER
            elif state == _CRLF:
                if n - pos < 2:
                    self._keep(data, pos, 2)
                    return
                if data[pos:pos + 2] != b"\r\n":
                    raise Failure("disconnect", "invalid HTTP chunk framing")
                pos += 2
                self._state = _SIZE
            elif state == _HEAD:
                i = data.find(b"\r\n\r\n", pos)
                if i < 0:
                    self._keep(data, pos, _HEAD_CAP)
                    return
                self._head(data[pos:i])
                pos = i + 4
            elif state == _TRAILER:
                i = data.find(b"\r\n", pos)
                if i < 0:
                    self._keep(data, pos, _LINE_CAP)
                    return
                empty = i == pos
                pos = i + 2
                if empty:
                    self._message_end()
            else:  # _UNTIL_CLOSE
                self._body(data[pos:] if pos else data, now)
                return

    def _keep(self, data: bytes, pos: int, cap: int) -> None:
        rest = data[pos:] if pos else data
        if len(rest) > cap:
            raise Failure("disconnect", "invalid HTTP response (line too long)")
        self._buf = rest

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(None, 2)
        try:
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise ValueError
            status = int(parts[1])
        except ValueError:
            shown = lines[0][:60].decode("latin-1")
            raise Failure("disconnect", f"invalid HTTP status line: {shown!r}") from None
        if 100 <= status < 200:  # 100 Continue and friends: the real answer follows
            return
        chunked = False
        length: int | None = None
        keep_alive = parts[0] != b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise Failure("disconnect", "invalid HTTP Content-Length") from None
            elif name == QUEUE_WAIT_HEADER:
                self._sent[1] = queue_wait_s(value.strip())
            elif name == b"connection":
                token = value.strip().lower()
                if token == b"close":
                    keep_alive = False
                elif token == b"keep-alive":
                    keep_alive = True
        self._status = status
        self._keep_alive = keep_alive
        if chunked:
            self._state = _SIZE
        elif length is not None:
            self._left = length
            self._state = _LENGTH
            if length == 0:
                self._message_end()
        elif status in (204, 304):
            self._message_end()
        else:
            self._keep_alive = False
            self._state = _UNTIL_CLOSE

    def _body(self, data: bytes, now: float) -> None:
        if self._status >= 400:
            if len(self._err) < _ERROR_BODY_CAP:
                self._err += data
            return
        if self._sse is not None:
            try:
                final = self._sse.feed(data, now, self._times)
            except StreamError as exc:
                raise Failure(exc.kind, str(exc)) from None
        else:
            self._rest, final = feed_lines(self._rest, data, now, self._times)
        if final is not None and self._final is None:
            self._final = final


class WireClient:
    """A pool of keep-alive `WireConnection`s to one http:// server (grows to the concurrency in use): the
    `Transport` for plain http://."""

    kernel_stamps = True

    def __init__(self, base_url: str, timeout: float | None = None, connect_timeout: float | None = None,
                 headers: dict[str, str] | None = None, sse: bool = False) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the wire client speaks plain http:// only, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.netloc = parts.netloc.rsplit("@", 1)[-1]
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.idle: list[WireConnection] = []
        self._all: set[WireConnection] = set()
        self._built: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        self.reads = [0, 0]  # response reads stamped by the kernel / at read time (all connections)
        self.sse = sse
        # Extra header lines (validated by `core.bench.apis.parse_headers`: no CR/LF can reach this point).
        self._extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())

    @classmethod
    def for_url(cls, base_url: str, timeout: float | None = None, connect_timeout: float | None = None,
                headers: dict[str, str] | None = None, sse: bool = False) -> WireClient | None:
        """A client for `base_url`, or None where it is not plain http:// (use aiohttp there)."""
        try:
            return cls(base_url, timeout, connect_timeout, headers, sse)
        except ValueError:
            return None

    def request_bytes(self, path: str, body: bytes) -> bytes:
        """The whole request (head + body), built once per (path, body object)."""
        key = (path, id(body))
        hit = self._built.get(key)
        if hit is not None and hit[0] is body:
            return hit[1]
        head = (f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.netloc}\r\nUser-Agent: sollama-bench\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{self._extra}"
                "Connection: keep-alive\r\n\r\n").encode()
        request = head + body
        self._built[key] = (body, request)
        return request

    async def _connection(self) -> WireConnection:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
            self._all.discard(conn)
        try:
            _, conn = await asyncio.wait_for(
                open_stamped(self.host, self.port, lambda: WireConnection(self), self.reads), self.connect_timeout)
        except TimeoutError:
            raise Failure("connect", f"cannot connect to {self.netloc}: no answer within "
                                     f"{self.connect_timeout:g} s") from None
        except OSError as exc:
            if out_of_files(exc):  # this process, not the server: the run stops with a local error
                raise Failure("local", f"too many open files connecting to {self.netloc}") from None
            raise Failure("connect", f"cannot connect to {self.netloc}: {exc}") from None
        self._all.add(conn)
        return conn

    async def exchange(self, path: str, body: bytes, times: list[float], sent: list[float | None],
                       due: float | None = None) -> dict[str, Any]:
        """POST `body` to `path` (at `due`, waited for once a connection is held); text-chunk arrival times go to
        `times`, the send time to `sent[0]`, a gateway's queue wait to `sent[1]`; returns the final object or
        raises `Failure`."""
        request = self.request_bytes(path, body)
        conn = await self._connection()
        if due is not None:
            try:
                await wait_until(due)
            except asyncio.CancelledError:
                self.idle.append(conn)
                raise
            if conn.closed:  # the server closed the idle connection while we waited
                conn = await self._connection()
        conn.start(request, times, self.timeout, self.sse, sent)
        fut = conn.fut
        assert fut is not None
        try:
            return await fut
        except asyncio.CancelledError:
            if not fut.done():
                conn.abort()
            raise
        finally:
            if conn.closed:
                self._all.discard(conn)

    def close(self) -> None:
        """Close every connection (in-flight requests fail as disconnects)."""
        for conn in list(self._all):
            conn._close()
        self._all.clear()
        self.idle.clear()
