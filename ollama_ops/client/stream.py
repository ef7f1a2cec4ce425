"""The async side's low-level layer: one HTTP exchange, raw. `StreamSession.open` sends a request and returns a
`RawResponse` once the head came: status, headers, and the body as byte chunks as they arrive (`chunks()`),
untouched (no decompression, no parsing). `AsyncClient`, the gateway's upstream calls and the bench's https://
path are built on it.

It never retries (a retry is a policy: `AsyncClient` has one; the gateway's fleet has its own) and maps every
transport failure into the error tree:
- cannot connect (refused, no route, connect timeout) → `ServerUnreachable` (`LocalLimit` when out of files);
- no head within the read timeout, or a whole-exchange `total` timeout → `RequestTimeout`;
- no byte for `read_timeout` seconds mid-body → `RequestTimeout`;
- the connection broke, or the answer is not HTTP → `ServerError`.

Transports, picked by benchmark (docs/gateway.md, "Overhead"): for plain http:// the wire transport
(`client.wire_stream`: asyncio protocols and llhttp's C parser), except bodies streamed up and HEAD requests;
aiohttp for those and for https://. `SOLLAMA_STREAM_TRANSPORT=aiohttp` forces aiohttp everywhere (to compare).
Importing this module imports aiohttp (~290 ms), so only code paths that stream import it.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from ollama_ops.client.protocol import unreachable
from ollama_ops.errors import LocalLimit, RequestTimeout, ServerError, ServerUnreachable

_CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_BROKEN = (aiohttp.ClientError, ConnectionError, OSError)

Body = bytes | bytearray | AsyncIterable[bytes] | None


class RawResponse(Protocol):
    """An answer whose head came: `status`, `headers` (case-insensitive `get`/`in`/`[]`), the body with
    `chunks()` / `read()`. `release()` returns the connection to the pool once the body was read to the end;
    `close()` drops it (an abandoned body: the server sees the connection close at once, so Ollama stops
    generating)."""

    status: int
    headers: Mapping[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


class AioResponse:
    """`RawResponse` over aiohttp."""

    __slots__ = ("_base", "_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, base: str) -> None:
        self._resp = resp
        self._base = base
        self.status: int = resp.status
        self.headers: Mapping[str, str] = resp.headers  # case-insensitive

    def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (one item per read, however the server framed them)."""
        return _Chunks(self._resp.content, self._base)

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except BaseException as exc:
            self._resp.close()
            raise _mid_body(exc, self._base) from exc

    def release(self) -> None:
        self._resp.release()

    def close(self) -> None:
        self._resp.close()


class _Chunks:
    """`async for` over a response body with the error mapping; a class (not an async generator) so an abandoned
    iteration leaves nothing to finalise."""

    __slots__ = ("_base", "_read")

    def __init__(self, content: aiohttp.StreamReader, base: str) -> None:
        self._read = content.readany
        self._base = base

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            data = await self._read()
        except (TimeoutError, *_BROKEN) as exc:
            raise _mid_body(exc, self._base) from exc
        if not data:
            raise StopAsyncIteration
        return data


def _mid_body(exc: BaseException, base: str) -> BaseException:
    if isinstance(exc, TimeoutError):
        return RequestTimeout(f"the stream from {base} stalled")
    if isinstance(exc, _BROKEN):
        return ServerError(f"the connection to {base} broke mid-response ({type(exc).__name__})")
    return exc


class StreamSession:
    """A keep-alive connection pool to one server (`base_url`); only that server is ever contacted.

    `connect_timeout` bounds opening a connection, `read_timeout` every wait for a byte (the head, and each gap
    in the body). `headers` go with every request. `max_connections` caps the pool (0: no cap). Create and use
    it inside the running loop; `await close()` at the end."""

    def __init__(self, base_url: str, *, connect_timeout: float = 3.0, read_timeout: float | None = 300.0,
                 headers: Mapping[str, str] | None = None, max_connections: int = 0,
                 transport: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.headers = dict(headers or {})
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.transport = transport or os.environ.get("SOLLAMA_STREAM_TRANSPORT") or "auto"
        self._wire: Any = None
        parts = urlsplit(self.base_url)
        if self.transport != "aiohttp" and parts.scheme == "http" and parts.hostname and max_connections == 0:
            from ollama_ops.client.wire_stream import WirePool

            self._wire = WirePool(parts.hostname, parts.port or 80, parts.netloc.rsplit("@", 1)[-1],
                                  self.base_url, connect_timeout, read_timeout, self.headers)
            self._prefix = parts.path

    def _open_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300, enable_cleanup_closed=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                              headers=self.headers,
                                              skip_auto_headers=("User-Agent", "Accept-Encoding"))
        return self._session

    def open(self, method: str, path: str, *, body: Body = None, json: Any = None,
             headers: Mapping[str, str] | None = None, total: float | None = None,
             head_timeout: float | None = None) -> Coroutine[Any, Any, RawResponse]:
        """Send one request (await it); the response once the answer's head came (any status). `body` is bytes
        or an async iterable of bytes (streamed up); `json` an object to send as JSON. `total` bounds the whole
        exchange, body included; `head_timeout` the wait for the answer's head once the request is sent. Raises
        ServerUnreachable / RequestTimeout / ServerError (module docstring)."""
        wire = self._wire
        if wire is not None and method != "HEAD" and (body is None or isinstance(body, bytes | bytearray)):
            if json is not None:
                body = jsonlib.dumps(json).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            return wire.open(method, self._prefix + path, body, headers, total, head_timeout)  # its coroutine
        return self._open_aio(method, path, body, json, headers, total, head_timeout)

    async def _open_aio(self, method: str, path: str, body: Body, json: Any, headers: Mapping[str, str] | None,
                        total: float | None, head_timeout: float | None) -> RawResponse:
        session = self._session or self._open_session()
        extra: dict[str, Any] = {}
        if total is not None:
            read = self.read_timeout if self.read_timeout is None else min(self.read_timeout, total)
            extra["timeout"] = aiohttp.ClientTimeout(total=total, sock_connect=self.connect_timeout, sock_read=read)
        try:
            async with asyncio.timeout(head_timeout):
                resp = await session.request(method, self.base_url + path, data=body, json=json, headers=headers,
                                             allow_redirects=False, compress=False, **extra)
        except _CONNECT_ERRORS as exc:
            raise unreachable(self.base_url, exc) from exc
        except TimeoutError as exc:
            raise RequestTimeout(f"no answer from {self.base_url}{path} in time") from exc
        except _BROKEN as exc:
            raise ServerError(f"the connection to {self.base_url} failed ({type(exc).__name__})") from exc
        return AioResponse(resp, self.base_url)

    async def close(self) -> None:
        if self._wire is not None:
            self._wire.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def is_refusal(exc: BaseException) -> bool:
    """Whether a failed `open` sent nothing (no connection was made): safe to send again, anywhere."""
    return isinstance(exc, ServerUnreachable | LocalLimit)


__all__ = ["AioResponse", "RawResponse", "StreamSession", "is_refusal"]
