"""The async Ollama client over aiohttp: the bench's hot path and anything concurrent.

Shares request shapes, the NDJSON parser and the error mapping with the sync client (`protocol`, `core.ndjson`).
Importing this module imports aiohttp (~290 ms), so only code paths that need it import it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ollama_ops.client.protocol import (
    GenerateRequest,
    GenerateResult,
    ResultBuilder,
    error_for_status,
    unreachable,
)
from ollama_ops.client.resilience import CircuitBreaker
from ollama_ops.core.ndjson import FinalChunk, StreamEvent, parse_line, to_event
from ollama_ops.errors import RequestTimeout, ServerError, ServerUnreachable


class AsyncOllamaClient:
    """One aiohttp session to one server. `read_timeout` bounds the wait for each chunk of a stream."""

    def __init__(self, base_url: str, *, connect_timeout: float = 3.0, read_timeout: float = 300.0,
                 max_connections: int = 0, breaker: CircuitBreaker | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.breaker = breaker or CircuitBreaker()
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncOllamaClient:
        self.session  # noqa: B018 - create inside the running loop
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, force_close=False,
                                             enable_cleanup_closed=False)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout,
                                            sock_read=self.read_timeout)
            self._session = aiohttp.ClientSession(self.base_url, connector=connector, timeout=timeout,
                                                  headers={"User-Agent": "sollama"}, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        return unreachable(self.base_url, exc)

    async def get_json(self, path: str) -> Any:
        self.breaker.check(self.base_url)
        try:
            async with self.session.get(path) as resp:
                body = await resp.read()
                self.breaker.record_success()
                if resp.status >= 400:
                    raise error_for_status(resp.status, body)
                return parse_line(body)
        except aiohttp.ClientConnectorError as exc:
            self.breaker.record_failure()
            raise self._unreachable(exc) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise RequestTimeout(f"no answer from {self.base_url}{path} within {self.read_timeout:g}s") from exc

    async def version(self) -> str:
        return str((await self.get_json("/api/version")).get("version", ""))

    async def ps(self) -> list[dict[str, Any]]:
        return list((await self.get_json("/api/ps")).get("models") or [])

    async def stream_objects(self, path: str, body: dict[str, Any], *, model: str | None = None,
                             ) -> AsyncIterator[tuple[float, dict[str, Any]]]:
        """POST and yield (perf_counter at arrival, decoded object) per NDJSON line. An `{"error"}` object is
        yielded as it is; the caller decides (see `stream`)."""
        self.breaker.check(self.base_url)
        try:
            async with self.session.post(path, json=body) as resp:
                self.breaker.record_success()
                if resp.status >= 400:
                    raise error_for_status(resp.status, await resp.read(), model=model)
                content = resp.content
                while True:
                    line = await content.readline()
                    if not line:
                        return
                    now = time.perf_counter()
                    if line.strip():
                        yield now, parse_line(line)
        except aiohttp.ClientConnectorError as exc:
            self.breaker.record_failure()
            raise self._unreachable(exc) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise RequestTimeout(f"the stream from {self.base_url}{path} stalled: no data for "
                                 f"{self.read_timeout:g}s") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise ServerError(f"the connection to {self.base_url} broke mid-stream ({type(exc).__name__})") from exc

    async def stream(self, req: GenerateRequest) -> AsyncIterator[StreamEvent]:
        """Typed events of a generate/chat stream; the last is a FinalChunk."""
        async for _, obj in self.stream_objects(req.path, {**req.payload(), "stream": True}, model=req.model):
            event = to_event(obj)
            yield event
            if isinstance(event, FinalChunk):
                return
        raise ServerError("the server ended the stream before its final chunk")

    async def generate(self, req: GenerateRequest) -> GenerateResult:
        builder = ResultBuilder(req.model)
        async for event in self.stream(req):
            builder.add(event)
        return builder.result()
