"""The proxied paths (/api/*, /v1/*) as a plain ASGI handler: the gateway's hot path.

Order of checks: allow-listed path (404/405) → key (401, the same message for every bad key) → admin route
(403) → body size (413) → model patterns (403) → limits (429) → a slot (503 when the queue is full, the wait
expired or the gateway drains) → upstream (502 unreachable, 504 no head in time). The upstream's bytes are
relayed as they arrive; a failure after the first byte ends the stream with the dialect's error line/event.
A caller that disconnects cancels its task: out of the queue at once, or the upstream request closed at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from ollama_ops.core.gateway import dialect
from ollama_ops.core.gateway.accounting import tokens_in
from ollama_ops.core.gateway.keys import KeyRecord, model_allowed
from ollama_ops.core.gateway.listing import filter_listing, merge_listings
from ollama_ops.core.gateway.requestid import request_id
from ollama_ops.core.gateway.routes import Kind, Match, NotAllowed, body_models, match, wants_stream
from ollama_ops.errors import LocalLimit, RequestTimeout, ServerUnreachable, SollamaError
from ollama_ops.gateway.admission import Draining, QueueFull, Refused
from ollama_ops.gateway.exchange import Exchange, send_error, send_whole
from ollama_ops.gateway.exchange import header as _header
from ollama_ops.gateway.httpd import scope_extension

if TYPE_CHECKING:
    from ollama_ops.client.stream import RawResponse
    from ollama_ops.gateway.runtime import Gateway

_TAIL = 4096
_PASSED = ((b"content-type", "Content-Type"), (b"accept", "Accept"))  # request headers sent on upstream


class _Malformed(Exception):
    pass


async def handle(gw: Gateway, scope: dict, receive, send) -> None:
    client = scope.get("client")
    ex = Exchange(request_id(_header(scope, b"x-request-id")), scope["method"], scope["path"],
                  f"{client[0]}:{client[1]}" if client else "-")
    ex.area = "v1" if ex.path.startswith("/v1/") else "api"
    task = asyncio.current_task()
    try:
        await _handle(gw, ex, scope, receive, send, task)
    except asyncio.CancelledError:
        if not ex.gone or task is None or task.uncancel() > 0:
            raise
        ex.code = ex.code if ex.finished else 499
        ex.error = ex.error or "client disconnected"
    finally:
        ex.duration_s = time.perf_counter() - ex.t0
        gw.finish(ex)


async def _read_body(scope: dict, receive, limit: int) -> bytes | None:
    """The whole body, or None when the caller left; raises OverflowError past `limit` bytes."""
    length = _header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise OverflowError
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise OverflowError
            parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts) if len(parts) != 1 else parts[0]


async def _stream_body(receive):
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("the caller disconnected during the upload")
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body", False):
            return


def _cancel_when_gone(scope: dict, ex: Exchange, task: asyncio.Task | None) -> None:
    """When the caller disconnects, cancel the request's task (unless its response is complete): out of the
    queue at once, or the upstream request closed at once. The server calls back (`sollama.on_disconnect`), so
    no task per request waits on `receive()` for it."""

    def gone() -> None:
        if not ex.finished and task is not None:
            ex.gone = True
            task.cancel()

    scope_extension(scope, "sollama.on_disconnect")(gone)


async def _handle(gw: Gateway, ex: Exchange, scope: dict, receive, send, task) -> None:
    try:
        found = match(scope["method"], scope["path"], scope.get("raw_path"))
    except NotAllowed as exc:
        msg = "not found" if exc.status == 404 else f"method {scope['method']} not allowed on {scope['path']}"
        return await send_error(ex, send, exc.status, msg)
    route = found.route
    ex.route, ex.kind = route.path, route.kind.value

    key, ok = gw.authenticate(_header(scope, b"authorization"), _header(scope, b"x-api-key"))
    if not ok:
        return await send_error(ex, send, 401, dialect.UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
    ex.key = key.name if key else "-"
    ex.authed = True
    if route.kind is Kind.ADMIN and key is not None and not key.admin:
        return await send_error(ex, send, 403, f"this key may not use {route.method} {route.path} (admin only)")

    upload = route.path == "/api/blobs/{digest}" and route.method == "POST"
    doc: Any = None
    body: Any
    if upload:
        body = _stream_body(receive)
    else:
        try:
            body = await _read_body(scope, receive, gw.config.body_limit)
        except OverflowError:
            return await send_error(ex, send, 413, f"request body over the limit of {gw.config.body_limit} bytes")
        if body is None:
            ex.gone, ex.code, ex.error = True, 499, "client disconnected"
            return
        if body and route.model_fields:
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
    models = body_models(route, doc) or []
    if found.path_model:
        models.append(found.path_model)
    if key is not None and key.models:
        if route.model_fields and body and not isinstance(doc, dict):
            return await send_error(ex, send, 400, "the request body must be a JSON object")
        for name in models:
            if not model_allowed(key.models, name):
                return await send_error(ex, send, 403, f"this key may not use model '{name}'")
    if models:
        ex.model = models[0]
    ex.stream = wants_stream(route, doc)
    if gw.config.log_prompts and isinstance(doc, dict):
        ex.prompt = doc.get("prompt", doc.get("messages", doc.get("input")))

    leased = False
    extra: list[tuple[bytes, bytes]] = []
    if key is not None and route.kind is Kind.INFER and (key.rpm or key.tpm or key.concurrency or key.daily_tokens):
        refusal, verdict = await gw.limiter.admit_async(key)
        if refusal is not None:
            gw.metrics.rejected.labels(refusal.name).inc()
            hdrs = [(k.lower().encode(), v.encode()) for k, v in refusal.headers().items()]
            return await send_error(ex, send, 429, refusal.message(), hdrs)
        leased = True
        if verdict is not None:
            extra = [(k.lower().encode(), v.encode()) for k, v in verdict.headers().items()]
    if not upload:
        _cancel_when_gone(scope, ex, task)

    def attempt(upstream, retry_ok: bool):
        # a streamed upload cannot be sent twice: its failure is the answer
        return _forward(gw, ex, found, body, scope, send, extra, key, upstream=upstream,
                        retry_ok=retry_ok and not upload)  # the coroutine itself, for the dispatcher to await

    try:
        if route.kind is Kind.INFER:
            try:
                if not gw.admission.try_acquire():
                    ex.queue_s = await gw.admission.acquire(ex.key, key.priority if key else 1,
                                                            request_id=ex.request_id, model=ex.model)
                    gw.metrics.queue_wait.observe(ex.queue_s)
            except Refused as exc:
                reason = "draining" if isinstance(exc, Draining) else "queue_full" if isinstance(
                    exc, QueueFull) else "max_wait"
                gw.metrics.rejected.labels(reason).inc()
                why = reason.replace("_", " ")
                msg = dialect.BUSY if ex.area == "api" else f"server busy, please try again ({why})"
                return await send_error(ex, send, 503, msg, [(b"retry-after", str(exc.retry_after).encode())])
            try:
                await gw.dispatch.forward(ex, send, attempt)
            finally:
                gw.admission.release()
        elif not (route.kind is Kind.LIST and await _merged_listing(gw, ex, found, send, key)):
            await gw.dispatch.forward_any(ex, send, attempt)
    finally:
        if leased and key is not None:  # a lease is taken only for a key with limits
            gw.limiter.release(key)
            gw.limiter.charge(key, ex.prompt_tokens + ex.output_tokens)


async def _forward(gw: Gateway, ex: Exchange, found: Match, body: Any, scope: dict, send,
                   extra: list[tuple[bytes, bytes]], key: KeyRecord | None, *, upstream,
                   retry_ok: bool = False) -> str | None:
    """Send the request to `upstream` and relay its answer (the dispatcher's `Attempt`). With `retry_ok`, a failure
    before anything reached the caller (refused, no head in time, a broken connection, a 502/503 answer) is
    returned as its kind ("refused", "first-byte-timeout", "reset", "502", "503") with nothing sent, so the
    fleet can try another host; otherwise it becomes the error response. None: the exchange is done."""
    headers = {"X-Request-ID": ex.request_id}
    for name, title in _PASSED:
        value = _header(scope, name)
        if value is not None:
            headers[title] = value
    route = found.route
    try:  # the head's wait is timed by the transport (no timer of our own per request)
        resp = await upstream.open(route.method, found.path, body=body if body else None, headers=headers,
                                   head_timeout=gw.config.first_byte_timeout)
    except (TimeoutError, RequestTimeout):
        if retry_ok:
            return "first-byte-timeout"
        gw.note_upstream(True, upstream)
        await send_error(ex, send, 504, f"no answer from Ollama within {gw.config.first_byte_timeout:g} s")
        return None
    except SollamaError as exc:  # refused (nothing sent) or the connection broke
        refused = isinstance(exc, ServerUnreachable | LocalLimit)
        if retry_ok:
            return "refused" if refused else "reset"
        gw.note_upstream(False, upstream)
        why = _cause(exc)
        await send_error(ex, send, 502, f"Ollama at {upstream.base_url} is unreachable ({why})")
        return None
    if retry_ok and resp.status in (502, 503):
        resp.close()
        return str(resp.status)
    gw.note_upstream(True, upstream)
    clean = False
    try:
        clean = await _relay(gw, ex, resp, scope, send, extra, key) is not False
    finally:
        if clean:
            resp.release()
        else:
            resp.close()  # closes the upstream connection at once: Ollama stops and frees its slot
    return None


def _cause(exc: BaseException) -> str:
    """The name of the transport error under a mapped one (ClientConnectorError, ServerDisconnectedError)."""
    cause = exc.__cause__
    return type(cause).__name__ if cause is not None else type(exc).__name__


async def _relay(gw: Gateway, ex: Exchange, resp: RawResponse, scope: dict, send,
                 extra: list[tuple[bytes, bytes]], key: KeyRecord | None) -> bool | None:
    """Send the upstream's answer; False when it failed mid-way (the upstream connection must be closed)."""
    status = resp.status
    ctype = resp.headers.get("Content-Type", "")
    head = [(b"x-request-id", ex.request_id.encode()), (b"x-queue-wait-ms", b"%d" % round(ex.queue_s * 1000)),
            *extra]
    if status == 503:
        head.append((b"retry-after", b"1"))
    if status >= 400 and "json" not in ctype:
        text = (await resp.read())[:200].decode("utf-8", "replace").strip()
        await send_error(ex, send, status, f"Ollama answered {status}: {text or 'no body'}", head[1:])
        return None
    if ex.kind == Kind.LIST.value and key is not None and key.models and status == 200:
        raw = _filter_listing(await resp.read(), key.models)
        await send_whole(ex, send, status, ctype, raw, head)
        return None

    ndjson, sse = "ndjson" in ctype, "event-stream" in ctype
    if "Content-Length" in resp.headers:
        head.append((b"content-length", resp.headers["Content-Length"].encode()))
    if ctype:
        head.append((b"content-type", ctype.encode()))
    ex.status = ex.code = status
    await send({"type": "http.response.start", "status": status, "headers": head})
    feed = _Feed(ex, scope_extension(scope, "sollama.push"), ndjson, sse)
    drain = scope_extension(scope, "sollama.drain")
    try:
        pipe = getattr(resp, "pipe", None)
        if pipe is not None:  # the wire transport: each chunk goes on from the upstream's read callback
            await pipe(feed, drain)
        else:
            async for chunk in resp.chunks():
                if not feed(chunk):
                    await drain()
        feed.end()
    except _Malformed:
        await _fail_stream(ex, send, sse, 502, "Ollama sent a malformed line; the stream was stopped")
        return False
    except RequestTimeout:
        await _fail_stream(ex, send, sse, 504, f"Ollama sent nothing for {gw.config.idle_timeout:g} s; the "
                                               "stream was stopped")
        return False
    except SollamaError:
        await _fail_stream(ex, send, sse, 502, "the connection to Ollama broke mid-response")
        return False
    if status == 200:
        ex.prompt_tokens, ex.output_tokens = tokens_in((feed.prev + feed.last)[-_TAIL:],
                                                       sse_events=max(0, feed.events - 1))
    return True


class _Feed:
    """The body on its way to the caller, one piece at a time (`feed(chunk, last)` → False: wait for the caller's
    socket to drain): NDJSON is cut at line ends and each line checked, SSE events are counted, TTFT is taken at
    the first bytes, and the last two pieces are kept for the token counts. `last` (the upstream's body ended with
    these bytes) ends the response in the same write."""

    __slots__ = ("ended", "events", "ex", "last", "ndjson", "pending", "prev", "push", "sse")

    def __init__(self, ex: Exchange, push, ndjson: bool, sse: bool) -> None:
        self.ex, self.push, self.ndjson, self.sse = ex, push, ndjson, sse
        self.pending = self.prev = self.last = b""
        self.events = 0
        self.ended = False

    def __call__(self, chunk: bytes, last: bool = False) -> bool:
        if self.ndjson:
            data = self.pending + chunk if self.pending else chunk
            cut = len(data) if last else data.rfind(b"\n") + 1
            self.pending, data = data[cut:], data[:cut]
            if data and not dialect.ndjson_ok(data):
                raise _Malformed
        else:
            data = chunk
            if self.sse:
                self.events += data.count(b"data: {")
        ex = self.ex
        if data:
            if ex.ttft_s is None:
                ex.ttft_s = time.perf_counter() - ex.t0
            self.prev, self.last = self.last, data
        elif not last:
            return True
        if last:
            self.ended = ex.finished = True
        return self.push(data, last)

    def end(self) -> None:
        """The body ended apart from its last bytes: the rest of an unterminated last line goes on (checked), then
        the response's end."""
        if not self.ended:
            self(b"", True)


async def _fail_stream(ex: Exchange, send, sse: bool, code: int, message: str) -> None:
    ex.code, ex.error = code, message
    ex.finished = True
    await send({"type": "http.response.body", "body": dialect.stream_error(ex.area, message, sse=sse),
                "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _filter_listing(raw: bytes, patterns: list[str]) -> bytes:
    """A listing's bytes cut to the models a key may use (see `core.gateway.listing.filter_listing`)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw
    return json.dumps(filter_listing(doc, patterns)).encode()


async def _merged_listing(gw: Gateway, ex: Exchange, found: Match, send, key: KeyRecord | None) -> bool:
    """A listing over several hosts: every healthy host's answer merged into one (False: relay one host's)."""
    docs = await gw.dispatch.listings(found.route.path)
    if not docs:
        return False
    doc = merge_listings(found.route.path, docs)
    if key is not None and key.models:
        doc = filter_listing(doc, key.models)
    head = [(b"x-request-id", ex.request_id.encode()), (b"x-queue-wait-ms", b"0")]
    await send_whole(ex, send, 200, "application/json; charset=utf-8", json.dumps(doc).encode(), head)
    return True
