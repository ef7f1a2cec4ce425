"""The async client: the library's `AsyncClient`, for anything concurrent, built on the low-level streaming layer
`client.stream` (aiohttp underneath).

Same discovery, request shapes, NDJSON parser, error mapping, retry policy, breaker and logging as the sync client
(`discovery`, `protocol`, `resilience`, `reqlog`). A stream holds one `max_concurrency` slot from its first
`__anext__` until its end, an error, `aclose()`, or the moment it is dropped unfinished (its finaliser gives the
slot back and closes the connection, so Ollama stops generating). Importing this module imports aiohttp
(~290 ms), so only code paths that need it import it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from ollama_ops.client.admission import TaskGate
from ollama_ops.client.discovery import Discovery, discover
from ollama_ops.client.protocol import (
    GenerateRequest,
    GenerateResult,
    ResultBuilder,
    build_request,
    embed_payload,
    embeddings_from,
    error_for_status,
    result_from_object,
)
from ollama_ops.client.reqlog import RequestLog, eval_count
from ollama_ops.client.resilience import CircuitBreaker, RetryPolicy, breaker_for
from ollama_ops.client.stream import RawResponse, StreamSession
from ollama_ops.client.sync import USER_AGENT, ClientInfo
from ollama_ops.core.ndjson import FinalChunk, parse_line, to_event
from ollama_ops.errors import LocalLimit, OllamaError, RequestTimeout, ServerError, ServerUnreachable


class AsyncClient:
    """The async twin of `Client` (see it for discovery, timeouts, retries and the breaker).

    `max_concurrency` calls in flight at most; up to `max_queue` more wait in FIFO order (QueueFull past that, or
    past `queue_timeout` seconds of waiting). `max_connections` caps the connection pool (0: no cap). Use as
    `async with AsyncClient() as c:` so the connections are closed."""

    def __init__(self, host: str | None = None, *, api_key: str | None = None, connect_timeout: float = 3.0,
                 read_timeout: float = 300.0, total_timeout: float | None = None, retries: int = 2,
                 busy_retries: int = 2, breaker: CircuitBreaker | None = None,
                 max_concurrency: int | None = None, max_queue: int | None = None,
                 queue_timeout: float | None = None, max_connections: int = 0) -> None:
        if host and "://" in host:
            self.discovery = Discovery(host.rstrip("/"), "argument", gateway=bool(api_key), api_key=api_key)
        else:
            self.discovery = discover(host, api_key=api_key)
        self.base_url = self.discovery.base_url
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.retries = retries
        self.busy_retries = busy_retries
        self.breaker = breaker or breaker_for(self.base_url)
        self.gate = TaskGate(max_concurrency, max_queue, queue_timeout) if max_concurrency is not None else None
        headers = {"User-Agent": USER_AGENT}
        if self.discovery.api_key:
            headers["Authorization"] = f"Bearer {self.discovery.api_key}"
        self.raw = StreamSession(self.base_url, connect_timeout=connect_timeout, read_timeout=read_timeout,
                                 headers=headers, max_connections=max_connections)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.raw.close()

    def describe(self) -> ClientInfo:
        gate = self.gate
        return ClientInfo(self.base_url, self.discovery.source, self.discovery.gateway,
                          self.discovery.has_api_key, self.connect_timeout, self.read_timeout, self.total_timeout,
                          self.retries, self.busy_retries, self.breaker.state,
                          gate.limit if gate else None, gate.max_queue if gate else None)

    @property
    def breaker_state(self) -> str:
        return self.breaker.state

    def _deadline(self) -> float | None:
        return None if self.total_timeout is None else time.monotonic() + self.total_timeout

    async def _open(self, method: str, path: str, body: Any, entry: RequestLog,
                    deadline: float | None) -> RawResponse:
        """Send with the safe retries and the breaker; returns the response once its head came."""
        policy = RetryPolicy(self.retries, self.busy_retries, self.breaker, deadline)
        headers = {"X-Request-ID": entry.request_id}
        while True:
            self.breaker.check(self.base_url)
            total = None if deadline is None else max(0.001, deadline - time.monotonic())
            try:
                resp = await self.raw.open(method, path, json=body, headers=headers, total=total)
            except (ServerUnreachable, LocalLimit):  # nothing was sent: safe to send again, for any method
                delay = policy.after_refusal()
                if delay is None:
                    raise
            except RequestTimeout as exc:
                self.breaker.record_failure()
                raise RequestTimeout(f"no answer from {self.base_url}{path} within {self.read_timeout:g}s") from exc
            else:
                delay = policy.after_answer(resp.status, resp.headers.get("Retry-After"))
                if delay is None:
                    return resp
                resp.close()
            await asyncio.sleep(delay)
            entry.attempts = policy.attempts

    async def _json(self, method: str, path: str, body: Any = None, *, model: str | None = None) -> Any:
        entry = RequestLog(method, path, model)
        deadline = self._deadline()
        if self.gate is not None:
            await self.gate.acquire()
        try:
            resp = await self._open(method, path, body, entry, deadline)
            try:
                data = await resp.read()
            except RequestTimeout as exc:
                raise RequestTimeout(f"no answer from {self.base_url}{path} within {self.read_timeout:g}s") from exc
            resp.release()
            if resp.status >= 400:
                raise error_for_status(resp.status, data, model=model)
            obj = parse_line(data) if data.strip() else {}
        except Exception as exc:
            entry.failed(exc)
            raise
        finally:
            if self.gate is not None:
                self.gate.release()
        entry.done(resp.status, eval_count(obj))
        return obj

    # -- endpoints ---------------------------------------------------------------------------------------------

    async def get_json(self, path: str) -> Any:
        return await self._json("GET", path)

    async def version(self) -> str:
        return str((await self._json("GET", "/api/version")).get("version", ""))

    async def tags(self) -> list[dict[str, Any]]:
        return list((await self._json("GET", "/api/tags")).get("models") or [])

    async def ps(self) -> list[dict[str, Any]]:
        return list((await self._json("GET", "/api/ps")).get("models") or [])

    async def embed(self, model: str, input: str | list[str], *, truncate: bool | None = None,
                    options: dict[str, Any] | None = None, keep_alive: str | int | float | None = None,
                    dimensions: int | None = None) -> list[list[float]]:
        """POST /api/embed: one vector per input string."""
        body = embed_payload(model, input, truncate=truncate, options=options, keep_alive=keep_alive,
                             dimensions=dimensions)
        return embeddings_from(await self._json("POST", "/api/embed", body, model=model))

    def stream_objects(self, path: str, body: dict[str, Any], *, model: str | None = None,
                       ) -> AsyncIterator[tuple[float, dict[str, Any]]]:
        """POST and yield (perf_counter at arrival, decoded object) per NDJSON line. An `{"error"}` object is
        yielded as it is; the caller decides (see `stream`). Nothing is retried once the answer began."""
        return AsyncStream(self, path, body, model, typed=False)

    def stream(self, req: GenerateRequest) -> AsyncStream:
        """Typed events of a generate/chat stream; the last is a FinalChunk."""
        return AsyncStream(self, req.path, {**req.payload(), "stream": True}, req.model, typed=True)

    async def _run(self, req: GenerateRequest) -> GenerateResult:
        if not req.stream:
            obj = await self._json("POST", req.path, req.payload(), model=req.model)
            if not isinstance(obj, dict):
                raise OllamaError(f"{req.path} answered with something that is not a JSON object")
            return result_from_object(req.model, obj)
        builder = ResultBuilder(req.model)
        async for event in self.stream(req):
            builder.add(event)
        return builder.result()

    async def generate(self, model: str | GenerateRequest, prompt: str = "", *, stream: bool = False,
                       **fields: Any) -> Any:
        """`/api/generate`: `await c.generate(model, prompt)` gives a GenerateResult; with `stream=True` it gives
        an async iterator of events (`async for chunk in await c.generate(..., stream=True)`). A
        GenerateRequest runs as it says and gives the result."""
        if isinstance(model, GenerateRequest):
            return await self._run(model)
        req = build_request(model, prompt=prompt, stream=stream, **fields)
        return self.stream(req) if stream else await self._run(req)

    async def chat(self, model: str, messages: list[dict[str, Any]], *, stream: bool = False,
                   **fields: Any) -> Any:
        """`/api/chat`; returns and streams as `generate` does."""
        req = build_request(model, messages=list(messages), stream=stream, **fields)
        return self.stream(req) if stream else await self._run(req)


class AsyncStream:
    """One streamed call as an async iterator (of StreamEvents, or of (arrival, object) pairs). It takes its
    client's slot and sends at the first `__anext__`, and gives both back at the end, on an error, on `aclose()`,
    or when dropped unfinished (`__del__`: a caller that breaks out of `async for` and drops the iterator)."""

    __slots__ = ("_chunks", "_client", "_deadline", "_entry", "_held", "_lines", "_now", "_over", "_rest",
                 "_resp", "_status", "_tokens", "body", "model", "path", "typed")

    def __init__(self, client: AsyncClient, path: str, body: dict[str, Any], model: str | None, *,
                 typed: bool) -> None:
        self._client = client
        self.path, self.body, self.model, self.typed = path, body, model, typed
        self._resp: RawResponse | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._entry: RequestLog | None = None
        self._deadline: float | None = None
        self._held = False  # holds a slot of the client's gate
        self._over = False  # finished, failed or closed
        self._lines: deque[bytes] = deque()
        self._rest = b""
        self._now = 0.0
        self._status: int | str = "incomplete"
        self._tokens: int | None = None

    def __aiter__(self) -> AsyncStream:
        return self

    async def _start(self) -> None:
        client = self._client
        self._entry = RequestLog("POST", self.path, self.model)
        self._deadline = client._deadline()
        if client.gate is not None:
            await client.gate.acquire()
            self._held = True
        resp = self._resp = await client._open("POST", self.path, self.body, self._entry, self._deadline)
        self._status = resp.status
        if resp.status >= 400:
            raise error_for_status(resp.status, await resp.read(), model=self.model)
        self._chunks = resp.chunks()

    async def __anext__(self) -> Any:
        if self._over:
            raise StopAsyncIteration
        try:
            if self._entry is None:
                await self._start()
            return await self._next()
        except StopAsyncIteration:
            self._finish(clean=True)
            raise
        except RequestTimeout as exc:
            started = self._chunks is not None
            self._status = "RequestTimeout"
            self._finish()
            client = self._client
            if self._deadline is not None and time.monotonic() >= self._deadline:
                raise RequestTimeout(f"the call to {client.base_url}{self.path} ran past its total timeout of "
                                     f"{client.total_timeout:g}s") from exc
            if not started:
                raise
            raise RequestTimeout(f"the stream from {client.base_url}{self.path} stalled: no data for "
                                 f"{client.read_timeout:g}s") from exc
        except BaseException as exc:
            if self._status == "incomplete" or isinstance(self._status, int):
                self._status = getattr(exc, "status", None) or type(exc).__name__
            self._finish()
            raise

    async def _next(self) -> Any:
        lines = self._lines
        loads = json.loads
        while True:
            while lines:
                line = lines.popleft()
                try:
                    obj = loads(line)
                except ValueError:
                    obj = None
                if obj.__class__ is not dict:
                    if not line.strip():
                        continue
                    obj = parse_line(line)  # raises MalformedResponse naming the line
                if self.typed:
                    event = to_event(obj)
                    if event.__class__ is FinalChunk:
                        self._tokens = eval_count(obj)
                        self._finish(clean=True)
                    return event
                if obj.get("done"):
                    self._tokens = eval_count(obj)
                return self._now, obj
            assert self._chunks is not None
            try:
                data = await self._chunks.__anext__()
            except StopAsyncIteration:
                if self._rest:
                    lines.append(self._rest)
                    self._rest = b""
                    continue
                if self.typed:
                    raise ServerError("the server ended the stream before its final chunk") from None
                raise
            self._now = time.perf_counter()
            parts = (self._rest + data).split(b"\n") if self._rest else data.split(b"\n")
            self._rest = parts.pop()
            lines.extend(parts)

    def _finish(self, clean: bool = False) -> None:
        """Give the slot back and end the log record (once); close the connection unless the body was read."""
        if self._over:
            return
        self._over = True
        resp, self._resp, self._chunks = self._resp, None, None
        if resp is not None:
            if clean and not self._lines and not self._rest:
                resp.release()
            else:
                resp.close()
        if self._held:
            self._held = False
            gate = self._client.gate
            if gate is not None:
                gate.release()
        if self._entry is not None:
            self._entry.done(self._status, self._tokens)

    async def aclose(self) -> None:
        """End the call now: the connection is closed (Ollama stops generating), the slot given back."""
        self._finish()

    def __del__(self) -> None:
        if not self._over and (self._held or self._resp is not None):
            try:
                self._finish()
            except Exception:  # noqa: BLE001 - a finaliser must not raise (e.g. the loop is already closed)
                pass
