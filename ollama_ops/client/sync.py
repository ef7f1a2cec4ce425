"""The sync Ollama client over httpx: the CLI's ordinary calls."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from ollama_ops.client.protocol import (
    IDEMPOTENT_PATHS,
    GenerateRequest,
    GenerateResult,
    ResultBuilder,
    error_for_status,
    result_from_object,
    unreachable,
)
from ollama_ops.client.resilience import CircuitBreaker, backoff_delays
from ollama_ops.core.ndjson import FinalChunk, StreamEvent, parse_line, to_event
from ollama_ops.errors import OllamaError, RequestTimeout, ServerError, ServerUnreachable

USER_AGENT = "sollama"


class OllamaClient:
    """Talks to one Ollama server. Separate connect/read timeouts; the read timeout bounds the wait for
    every byte, so on a stream it is the longest allowed gap between chunks."""

    def __init__(self, base_url: str, *, connect_timeout: float = 3.0, read_timeout: float = 300.0,
                 retries: int = 2, breaker: CircuitBreaker | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.breaker = breaker or CircuitBreaker()
        # verify: certificates are checked on https://; on plain http:// there is no TLS to verify, and not
        # loading the CA bundle saves ~35 ms on every CLI call.
        self._http = httpx.Client(base_url=self.base_url, transport=transport, headers={"User-Agent": USER_AGENT},
                                  timeout=self._timeout(read_timeout), trust_env=False,
                                  verify=not self.base_url.startswith("http://"))

    @classmethod
    def from_settings(cls, settings: Any, *, read_timeout: float | None = None,
                      retries: int | None = None) -> OllamaClient:
        from ollama_ops.core.hosts import parse_host

        c = settings.client
        return cls(parse_host(settings.server.host).base_url, connect_timeout=c.connect_timeout,
                   read_timeout=read_timeout or c.read_timeout, retries=c.retries if retries is None else retries,
                   breaker=CircuitBreaker(c.breaker_failures, c.breaker_cooldown))

    def _timeout(self, read: float | None) -> httpx.Timeout:
        read = self.read_timeout if read is None else read
        return httpx.Timeout(connect=self.connect_timeout, read=read, write=max(read, 30.0), pool=self.connect_timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OllamaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------------------------

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        return unreachable(self.base_url, exc)

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send with retries on connection failures (idempotent paths only) and the circuit breaker."""
        self.breaker.check(self.base_url)
        retries = self.retries if request.url.path in IDEMPOTENT_PATHS or request.method == "HEAD" else 0
        delays = backoff_delays(retries)
        while True:
            try:
                response = self._http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self.breaker.record_failure()
                delay = next(delays, None)
                if delay is None or self.breaker.state == "open":
                    raise self._unreachable(exc) from exc
                time.sleep(delay)
                continue
            except httpx.TimeoutException as exc:
                raise RequestTimeout(f"no answer from {self.base_url}{request.url.path} within "
                                     f"{request.extensions['timeout']['read']:g}s") from exc
            except httpx.TransportError as exc:
                raise ServerError(f"connection to {self.base_url} failed: {exc or type(exc).__name__}") from exc
            self.breaker.record_success()
            return response

    def request(self, method: str, path: str, *, json: Any = None, content: Any = None,
                model: str | None = None, timeout: float | None = None) -> httpx.Response:
        """One non-streamed call; HTTP errors become typed exceptions."""
        req = self._http.build_request(method, path, json=json, content=content, timeout=self._timeout(timeout))
        response = self._send(req)
        if response.status_code >= 400:
            raise error_for_status(response.status_code, response.content, model=model)
        return response

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self.request(method, path, **kw)
        try:
            return response.json()
        except ValueError as exc:
            raise OllamaError(f"{path} answered with something that is not JSON: {response.text[:80]!r}") from exc

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
        req = self._http.build_request("POST", path, json=body, timeout=self._timeout(read_timeout))
        response = self._send(req, stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise error_for_status(response.status_code, response.content, model=model)
            try:
                for line in response.iter_lines():
                    if line.strip():
                        yield parse_line(line)
            except httpx.ReadTimeout as exc:
                raise RequestTimeout(f"the stream from {self.base_url}{path} stalled: no data for "
                                     f"{req.extensions['timeout']['read']:g}s") from exc
            except httpx.TransportError as exc:
                raise ServerError(f"the connection to {self.base_url} broke mid-stream "
                                  f"({type(exc).__name__})") from exc
        finally:
            response.close()

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

    def generate(self, req: GenerateRequest, *, read_timeout: float | None = None) -> GenerateResult:
        """Run a request to the end and return the collected result (streamed or not, as `req.stream` says)."""
        if not req.stream:
            obj = self._json("POST", req.path, json=req.payload(), model=req.model, timeout=read_timeout)
            return result_from_object(req.model, obj)
        builder = ResultBuilder(req.model)
        for event in self.stream(req, read_timeout=read_timeout):
            builder.add(event)
        return builder.result()

