"""The async client over aiohttp: the library's `AsyncClient`, for anything concurrent.

Same discovery, request shapes, NDJSON parser, error mapping, retries, breaker and logging as the sync client
(`discovery`, `protocol`, `resilience`, `reqlog`). Importing this module imports aiohttp (~290 ms), so only code
paths that need it import it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ollama_ops.client.admission import TaskGate
from ollama_ops.client.discovery import Discovery, discover
from ollama_ops.client.protocol import (
    RETRY_STATUSES,
    GenerateRequest,
    GenerateResult,
    ResultBuilder,
    build_request,
    embed_payload,
    embeddings_from,
    error_for_status,
    result_from_object,
    unreachable,
)
from ollama_ops.client.reqlog import RequestLog, eval_count
from ollama_ops.client.resilience import CircuitBreaker, backoff_delays, breaker_for, retry_after_seconds
from ollama_ops.client.sync import USER_AGENT, ClientInfo
from ollama_ops.core.ndjson import FinalChunk, StreamEvent, parse_line, to_event
from ollama_ops.errors import LocalLimit, OllamaError, RequestTimeout, ServerError, ServerUnreachable

_CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class AsyncClient:
    """The async twin of `Client` (see it for discovery, timeouts, retries and the breaker).

    `max_concurrency` calls in flight at most; up to `max_queue` more wait in FIFO order (QueueFull past that, or
    past `queue_timeout` seconds of waiting). `max_connections` caps the connection pool (0: no cap). Use as
    `async with AsyncClient() as c:` so the session is closed."""

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
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
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
            headers = {"User-Agent": USER_AGENT}
            if self.discovery.api_key:
                headers["Authorization"] = f"Bearer {self.discovery.api_key}"
            self._session = aiohttp.ClientSession(self.base_url, connector=connector, timeout=timeout,
                                                  headers=headers, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> ClientInfo:
        gate = self.gate
        return ClientInfo(self.base_url, self.discovery.source, self.discovery.gateway,
                          self.discovery.has_api_key, self.connect_timeout, self.read_timeout, self.total_timeout,
                          self.retries, self.busy_retries, self.breaker.state,
                          gate.limit if gate else None, gate.max_queue if gate else None)

    @property
    def breaker_state(self) -> str:
        return self.breaker.state

    def _unreachable(self, exc: Exception) -> ServerUnreachable | LocalLimit:
        return unreachable(self.base_url, exc)

    def _deadline(self) -> float | None:
        return None if self.total_timeout is None else time.monotonic() + self.total_timeout

    async def _sleep_within(self, delay: float, deadline: float | None) -> bool:
        if deadline is not None and time.monotonic() + delay >= deadline:
            return False
        await asyncio.sleep(delay)
        return True

    async def _open(self, method: str, path: str, body: Any, entry: RequestLog,
                    deadline: float | None) -> aiohttp.ClientResponse:
        """Send with the safe retries and the breaker; returns the response once its headers came."""
        delays = backoff_delays(self.retries)  # a refused connection sent nothing: safe for any method
        busy_delays = backoff_delays(self.busy_retries, base=0.25, cap=5.0)
        headers = {"X-Request-ID": entry.request_id}
        extra: dict[str, Any] = {}
        if deadline is not None:
            left = max(0.001, deadline - time.monotonic())
            extra["timeout"] = aiohttp.ClientTimeout(total=left, sock_connect=self.connect_timeout,
                                                     sock_read=min(self.read_timeout, left))
        while True:
            self.breaker.check(self.base_url)
            try:
                resp = await self.session.request(method, path, json=body, headers=headers, **extra)
            except _CONNECT_ERRORS as exc:
                self.breaker.record_failure()
                delay = next(delays, None)
                if delay is None or self.breaker.state == "open" or not await self._sleep_within(delay, deadline):
                    raise self._unreachable(exc) from exc
            except TimeoutError as exc:
                self.breaker.record_failure()
                raise RequestTimeout(f"no answer from {self.base_url}{path} within {self.read_timeout:g}s") from exc
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                raise ServerError(f"connection to {self.base_url} failed ({type(exc).__name__})") from exc
            else:
                self.breaker.record_success()
                if resp.status not in RETRY_STATUSES:
                    return resp
                delay = next(busy_delays, None)
                if delay is None:
                    return resp
                delay = retry_after_seconds(resp.headers.get("Retry-After")) or delay
                if not await self._sleep_within(delay, deadline):
                    return resp
                resp.release()
            entry.attempts += 1

    async def _json(self, method: str, path: str, body: Any = None, *, model: str | None = None) -> Any:
        entry = RequestLog(method, path, model)
        deadline = self._deadline()
        if self.gate is not None:
            await self.gate.acquire()
        try:
            resp = await self._open(method, path, body, entry, deadline)
            async with resp:
                data = await resp.read()
                if resp.status >= 400:
                    raise error_for_status(resp.status, data, model=model)
                obj = parse_line(data) if data.strip() else {}
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            entry.done("RequestTimeout")
            raise RequestTimeout(f"no answer from {self.base_url}{path} within {self.read_timeout:g}s") from exc
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
        return self._stream(path, body, model, typed=False)

    def stream(self, req: GenerateRequest) -> AsyncIterator[StreamEvent]:
        """Typed events of a generate/chat stream; the last is a FinalChunk."""
        return self._stream(req.path, {**req.payload(), "stream": True}, req.model, typed=True)

    async def _stream(self, path: str, body: dict[str, Any], model: str | None, *, typed: bool) -> AsyncIterator[Any]:
        # One generator for both views, so a chunk crosses one async-generator boundary on its way to the caller.
        entry = RequestLog("POST", path, model)
        deadline = self._deadline()
        status: int | str = "incomplete"
        tokens: int | None = None
        gate = self.gate
        if gate is not None:
            await gate.acquire()
        try:
            resp = await self._open("POST", path, body, entry, deadline)
            status = resp.status
            async with resp:
                if resp.status >= 400:
                    raise error_for_status(resp.status, await resp.read(), model=model)
                readline = resp.content.readline
                perf = time.perf_counter
                loads = json.loads
                while True:
                    line = await readline()
                    if not line:
                        break
                    try:
                        obj = loads(line.decode())
                    except ValueError:
                        obj = None
                    if obj.__class__ is not dict:
                        if not line.strip():
                            continue
                        obj = parse_line(line)  # raises MalformedResponse naming the line
                    if typed:
                        event = to_event(obj)
                        if event.__class__ is FinalChunk:
                            tokens = eval_count(obj)
                            yield event
                            return
                        yield event
                    else:
                        if obj.get("done"):
                            tokens = eval_count(obj)
                        yield perf(), obj
            if typed:
                raise ServerError("the server ended the stream before its final chunk")
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            status = "RequestTimeout"
            if deadline is not None and time.monotonic() >= deadline:
                raise RequestTimeout(f"the call to {self.base_url}{path} ran past its total timeout of "
                                     f"{self.total_timeout:g}s") from exc
            raise RequestTimeout(f"the stream from {self.base_url}{path} stalled: no data for "
                                 f"{self.read_timeout:g}s") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            status = "ServerError"
            raise ServerError(f"the connection to {self.base_url} broke mid-stream ({type(exc).__name__})") from exc
        except Exception as exc:
            if status == "incomplete" or isinstance(status, int):
                status = getattr(exc, "status", None) or type(exc).__name__
            raise
        finally:
            if gate is not None:
                gate.release()
            entry.done(status, tokens)

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
