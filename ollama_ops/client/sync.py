"""The sync client over httpx: the library's `Client` and the CLI's ordinary calls (one client for both)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, overload

import httpx

from ollama_ops.client.discovery import Discovery, discover
from ollama_ops.client.protocol import (
    IDEMPOTENT_PATHS,
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
from ollama_ops.client.resilience import CircuitBreaker, RetryPolicy, breaker_for
from ollama_ops.core.ndjson import FinalChunk, StreamEvent, parse_line, to_event
from ollama_ops.errors import LocalLimit, OllamaError, RequestTimeout, ServerError, ServerUnreachable

USER_AGENT = "sollama"


@dataclass
class ClientInfo:
    """What `describe()` reports: where the client talks, why there, and its resilience settings."""

    base_url: str
    source: str
    gateway: bool
    api_key: bool
    connect_timeout: float
    read_timeout: float
    total_timeout: float | None
    retries: int
    busy_retries: int
    breaker: str
    max_concurrency: int | None
    max_queue: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Client:
    """A sync client for Ollama, or the sollama gateway in front of it.

    `host` (and `api_key`) win; else discovery: SOLLAMA_URL (+ SOLLAMA_API_KEY), the sollama config file,
    OLLAMA_HOST, 127.0.0.1:11434 (`describe()` says which). Timeouts: `connect_timeout` to open a connection,
    `read_timeout` for every wait on a byte (on a stream: the longest gap between chunks), `total_timeout` for a
    whole call. Retries, with jittered exponential backoff: `retries` after connection failures (nothing was
    sent), `busy_retries` after 429/503 (honouring Retry-After); never once a stream's first byte came. One
    circuit breaker per host. `max_concurrency`/`max_queue`/`queue_timeout`: at most that many calls in flight,
    the others wait in FIFO order or get QueueFull. Thread-safe."""

    retry_writes = True  # connection failures happen before a byte is sent, so POSTs may retry them too
    default_busy_retries = 2

    def __init__(self, host: str | None = None, *, api_key: str | None = None, connect_timeout: float = 3.0,
                 read_timeout: float = 300.0, total_timeout: float | None = None, retries: int = 2,
                 busy_retries: int | None = None, breaker: CircuitBreaker | None = None,
                 max_concurrency: int | None = None, max_queue: int | None = None,
                 queue_timeout: float | None = None, transport: httpx.BaseTransport | None = None) -> None:
        if host and "://" in host:
            self.discovery = Discovery(host.rstrip("/"), "argument", gateway=bool(api_key), api_key=api_key)
        else:
            self.discovery = discover(host, api_key=api_key)
        self.base_url = self.discovery.base_url
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.retries = retries
        self.busy_retries = self.default_busy_retries if busy_retries is None else busy_retries
        self.breaker = breaker or self._default_breaker()
        self.gate: Any = None
        if max_concurrency is not None:
            from ollama_ops.client.admission import ThreadGate

            self.gate = ThreadGate(max_concurrency, max_queue, queue_timeout)
        headers = {"User-Agent": USER_AGENT}
        if self.discovery.api_key:
            headers["Authorization"] = f"Bearer {self.discovery.api_key}"
        # verify: certificates are checked on https://; on plain http:// there is no TLS to verify, and not
        # loading the CA bundle saves ~35 ms on every CLI call.
        self._http = httpx.Client(base_url=self.base_url, transport=transport, headers=headers,
                                  timeout=self._timeout(read_timeout), trust_env=False,
                                  verify=not self.base_url.startswith("http://"))

    def _default_breaker(self) -> CircuitBreaker:
        return breaker_for(self.base_url)

    @classmethod
    def from_settings(cls, settings: Any, *, read_timeout: float | None = None,
                      retries: int | None = None, api_key: str | None = None) -> Client:
        """The CLI's client: the address and the `client.*` knobs from resolved settings; its own breaker."""
        from ollama_ops.core.hosts import parse_host

        c = settings.client
        return cls(parse_host(settings.server.host).base_url, api_key=api_key, connect_timeout=c.connect_timeout,
                   read_timeout=read_timeout or c.read_timeout, retries=c.retries if retries is None else retries,
                   busy_retries=getattr(c, "busy_retries", None) if retries is None else 0,
                   breaker=CircuitBreaker(c.breaker_failures, c.breaker_cooldown))

    def describe(self) -> ClientInfo:
        """Where this client talks, which discovery source won, and its resilience settings."""
        gate = self.gate
        return ClientInfo(self.base_url, self.discovery.source, self.discovery.gateway,
                          self.discovery.has_api_key, self.connect_timeout, self.read_timeout, self.total_timeout,
                          self.retries, self.busy_retries, self.breaker.state,
                          gate.limit if gate else None, gate.max_queue if gate else None)

    @property
    def breaker_state(self) -> str:
        return self.breaker.state

    def _timeout(self, read: float | None, deadline: float | None = None) -> httpx.Timeout:
        read = self.read_timeout if read is None else read
        if deadline is not None:
            read = max(0.001, min(read, deadline - time.monotonic()))
        return httpx.Timeout(connect=self.connect_timeout, read=read, write=max(read, 30.0), pool=self.connect_timeout)

    def _deadline(self) -> float | None:
        return None if self.total_timeout is None else time.monotonic() + self.total_timeout

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------------------------

    def _unreachable(self, exc: Exception) -> ServerUnreachable | LocalLimit:
        return unreachable(self.base_url, exc)

    def _send(self, request: httpx.Request, *, stream: bool = False, log: RequestLog | None = None,
              deadline: float | None = None) -> httpx.Response:
        """Send with the safe retries (see the class) and the circuit breaker; returns once headers came."""
        idempotent = request.url.path in IDEMPOTENT_PATHS or request.method == "HEAD"
        policy = RetryPolicy(self.retries if idempotent or self.retry_writes else 0, self.busy_retries,
                             self.breaker, deadline)
        while True:
            self.breaker.check(self.base_url)
            try:
                response = self._http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                delay = policy.after_refusal()
                if delay is None:
                    raise self._unreachable(exc) from exc
            except httpx.TimeoutException as exc:
                self.breaker.record_failure()
                raise RequestTimeout(f"no answer from {self.base_url}{request.url.path} within "
                                     f"{request.extensions['timeout']['read']:g}s") from exc
            except httpx.TransportError as exc:
                raise ServerError(f"connection to {self.base_url} failed: {exc or type(exc).__name__}") from exc
            else:
                delay = policy.after_answer(response.status_code, response.headers.get("retry-after"))
                if delay is None:
                    return response
                response.close()
            time.sleep(delay)
            if log is not None:
                log.attempts = policy.attempts

    def _acquire(self) -> None:
        if self.gate is not None:
            self.gate.acquire()

    def _release(self) -> None:
        if self.gate is not None:
            self.gate.release()

    def request(self, method: str, path: str, *, json: Any = None, content: Any = None,
                model: str | None = None, timeout: float | None = None, log: bool = True) -> httpx.Response:
        """One non-streamed call; HTTP errors become typed exceptions. Logged unless `log=False` (the caller
        logs, e.g. with a token count)."""
        entry = RequestLog(method, path, model)
        deadline = self._deadline()
        req = self._http.build_request(method, path, json=json, content=content,
                                       timeout=self._timeout(timeout, deadline),
                                       headers={"X-Request-ID": entry.request_id})
        req.extensions["sollama_log"] = entry
        self._acquire()
        try:
            response = self._send(req, log=entry, deadline=deadline)
        except Exception as exc:
            entry.failed(exc)
            raise
        finally:
            self._release()
        if response.status_code >= 400:
            error = error_for_status(response.status_code, response.content, model=model)
            entry.done(response.status_code)
            raise error
        if log:
            entry.done(response.status_code)
        return response

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self.request(method, path, log=False, **kw)
        entry: RequestLog = response.request.extensions["sollama_log"]
        try:
            obj = response.json()
        except ValueError as exc:
            entry.done("malformed")
            raise OllamaError(f"{path} answered with something that is not JSON: {response.text[:80]!r}") from exc
        entry.done(response.status_code, eval_count(obj))
        return obj

    # -- endpoints ---------------------------------------------------------------------------------------------

    def ping(self, timeout: float | None = None) -> float:
        """GET / — the readiness probe. Returns the latency in seconds; raises if not ready."""
        start = time.perf_counter()
        response = self.request("GET", "/", timeout=timeout)
        if "ollama" not in response.text.lower():
            raise OllamaError(f"{self.base_url} answers, but not as Ollama: {response.text[:60]!r}")
        return time.perf_counter() - start

    def version(self) -> str:
        return str(self._json("GET", "/api/version").get("version", ""))

    def tags(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/tags").get("models") or [])

    def ps(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/ps").get("models") or [])

    def show(self, model: str, *, verbose: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model}
        if verbose:
            body["verbose"] = True
        return dict(self._json("POST", "/api/show", json=body, model=model))

    def delete(self, model: str) -> None:
        self.request("DELETE", "/api/delete", json={"model": model}, model=model)

    def unload(self, model: str) -> dict[str, Any]:
        """Unload at once: an empty prompt with keep_alive 0 (done_reason "unload")."""
        return dict(self._json("POST", "/api/generate", json={"model": model, "prompt": "", "keep_alive": 0,
                                                              "stream": False}, model=model))

    def embed(self, model: str, input: str | list[str], *, truncate: bool | None = None,
              options: dict[str, Any] | None = None, keep_alive: str | int | float | None = None,
              dimensions: int | None = None) -> list[list[float]]:
        """POST /api/embed: one vector per input string."""
        body = embed_payload(model, input, truncate=truncate, options=options, keep_alive=keep_alive,
                             dimensions=dimensions)
        return embeddings_from(self._json("POST", "/api/embed", json=body, model=model))

    def blob_exists(self, digest: str) -> bool:
        req = self._http.build_request("HEAD", f"/api/blobs/{digest}")
        response = self._send(req)
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise error_for_status(response.status_code, response.content)

    def upload_blob(self, digest: str, path: Path, progress: Callable[[int], None] | None = None,
                    chunk_size: int = 1 << 20) -> None:
        """POST the file's bytes as blob `digest`; `progress(n)` is called with each chunk's size."""

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while block := fh.read(chunk_size):
                    if progress:
                        progress(len(block))
                    yield block

        self.request("POST", f"/api/blobs/{digest}", content=chunks())

    def create(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST /api/create, yielding the server's progress objects ({"status": ...})."""
        for obj in self._stream_objects("/api/create", {**body, "stream": True}, model=None):
            if "error" in obj:
                raise ServerError(f"create failed: {obj['error']}")
            yield obj

    def _stream_objects(self, path: str, body: dict[str, Any], *, model: str | None,
                        read_timeout: float | None = None) -> Iterator[dict[str, Any]]:
        entry = RequestLog("POST", path, model)
        deadline = self._deadline()
        req = self._http.build_request("POST", path, json=body, timeout=self._timeout(read_timeout, deadline),
                                       headers={"X-Request-ID": entry.request_id})
        status: int | str = "incomplete"
        tokens: int | None = None
        self._acquire()
        try:
            response = self._send(req, stream=True, log=entry, deadline=deadline)
            status = response.status_code
            try:
                if response.status_code >= 400:
                    response.read()
                    raise error_for_status(response.status_code, response.content, model=model)
                try:
                    # Past this point nothing is retried: the server has started answering.
                    for line in response.iter_lines():
                        if deadline is not None and time.monotonic() > deadline:
                            status = "RequestTimeout"
                            raise RequestTimeout(f"the call to {self.base_url}{path} ran past its total timeout "
                                                 f"of {self.total_timeout:g}s")
                        if line.strip():
                            obj = parse_line(line)
                            if obj.get("done"):
                                tokens = eval_count(obj)
                            yield obj
                except httpx.ReadTimeout as exc:
                    status = "RequestTimeout"
                    raise RequestTimeout(f"the stream from {self.base_url}{path} stalled: no data for "
                                         f"{req.extensions['timeout']['read']:g}s") from exc
                except httpx.TransportError as exc:
                    status = "ServerError"
                    raise ServerError(f"the connection to {self.base_url} broke mid-stream "
                                      f"({type(exc).__name__})") from exc
            finally:
                response.close()
        except Exception as exc:
            if status == "incomplete" or isinstance(status, int):
                status = getattr(exc, "status", None) or type(exc).__name__
            raise
        finally:
            self._release()
            entry.done(status, tokens)

    def stream(self, req: GenerateRequest, *, read_timeout: float | None = None) -> Iterator[StreamEvent]:
        """Stream a generate/chat request as typed events; the last is a FinalChunk.

        Raises ServerError if the stream ends without its final chunk or carries an `{"error"}` line."""
        body = {**req.payload(), "stream": True}
        for obj in self._stream_objects(req.path, body, model=req.model, read_timeout=read_timeout):
            event = to_event(obj)
            yield event
            if isinstance(event, FinalChunk):
                return
        raise ServerError("the server ended the stream before its final chunk")

    def _run(self, req: GenerateRequest, read_timeout: float | None) -> GenerateResult:
        if not req.stream:
            obj = self._json("POST", req.path, json=req.payload(), model=req.model, timeout=read_timeout)
            return result_from_object(req.model, obj)
        builder = ResultBuilder(req.model)
        for event in self.stream(req, read_timeout=read_timeout):
            builder.add(event)
        return builder.result()

    @overload
    def generate(self, model: GenerateRequest, prompt: str = ..., *, stream: Literal[False] = ...,
                 read_timeout: float | None = ..., **fields: Any) -> GenerateResult: ...

    @overload
    def generate(self, model: str, prompt: str = ..., *, stream: Literal[False] = ...,
                 read_timeout: float | None = ..., **fields: Any) -> GenerateResult: ...

    @overload
    def generate(self, model: str, prompt: str = ..., *, stream: Literal[True],
                 read_timeout: float | None = ..., **fields: Any) -> Iterator[StreamEvent]: ...

    def generate(self, model: str | GenerateRequest, prompt: str = "", *, stream: bool = False,
                 read_timeout: float | None = None, **fields: Any) -> GenerateResult | Iterator[StreamEvent]:
        """`/api/generate`. `generate(model, prompt)` returns a GenerateResult (`.text`, `.timings`);
        `stream=True` returns an iterator of events (TextChunk…, then a FinalChunk). `fields`: system, options,
        format, keep_alive, raw, think, images. A GenerateRequest runs as it says (chat or generate) and returns
        the result."""
        if isinstance(model, GenerateRequest):
            return self._run(model, read_timeout)
        req = build_request(model, prompt=prompt, stream=stream, **fields)
        return self.stream(req, read_timeout=read_timeout) if stream else self._run(req, read_timeout)

    @overload
    def chat(self, model: str, messages: list[dict[str, Any]], *, stream: Literal[False] = ...,
             read_timeout: float | None = ..., **fields: Any) -> GenerateResult: ...

    @overload
    def chat(self, model: str, messages: list[dict[str, Any]], *, stream: Literal[True],
             read_timeout: float | None = ..., **fields: Any) -> Iterator[StreamEvent]: ...

    def chat(self, model: str, messages: list[dict[str, Any]], *, stream: bool = False,
             read_timeout: float | None = None, **fields: Any) -> GenerateResult | Iterator[StreamEvent]:
        """`/api/chat` with `messages` ([{"role", "content"}]); returns and streams as `generate` does."""
        req = build_request(model, messages=list(messages), stream=stream, **fields)
        return self.stream(req, read_timeout=read_timeout) if stream else self._run(req, read_timeout)


class OllamaClient(Client):
    """The same client with the CLI's original conservative defaults, kept for existing callers: connection
    retries only on idempotent calls, no retries after 429/503, a breaker of its own."""

    retry_writes = False
    default_busy_retries = 0

    def _default_breaker(self) -> CircuitBreaker:
        return CircuitBreaker()
