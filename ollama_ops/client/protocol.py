"""What the sync and async clients share: request shapes, results, and the mapping of answers to errors."""

from __future__ import annotations

import errno
import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from ollama_ops.core.ndjson import FinalChunk, StreamEvent, TextChunk, Timings
from ollama_ops.errors import (
    BadRequest,
    LocalLimit,
    ModelNotFound,
    OllamaError,
    ServerBusy,
    ServerError,
    ServerUnreachable,
)

IDEMPOTENT_PATHS = frozenset({"/", "/api/version", "/api/tags", "/api/ps", "/api/show"})
RETRY_STATUSES = frozenset({429, 503})  # refused before any work began: safe to send again after a pause


@dataclass
class GenerateRequest:
    """One generation: `/api/generate` when `messages` is None, else `/api/chat`."""

    model: str
    prompt: str = ""
    messages: list[dict[str, Any]] | None = None
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    format: str | dict[str, Any] | None = None
    keep_alive: str | int | float | None = None
    raw: bool = False
    stream: bool = True
    think: bool | None = None
    images: list[str] | None = None

    @property
    def api(self) -> str:
        return "generate" if self.messages is None else "chat"

    @property
    def path(self) -> str:
        return "/api/generate" if self.messages is None else "/api/chat"

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "stream": self.stream}
        if self.messages is None:
            body["prompt"] = self.prompt
            if self.system is not None:
                body["system"] = self.system
            if self.raw:
                body["raw"] = True
            if self.images:
                body["images"] = list(self.images)
        else:
            messages = list(self.messages)
            if self.system is not None and not any(m.get("role") == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": self.system})
            body["messages"] = messages
        if self.options:
            body["options"] = dict(self.options)
        if self.format is not None:
            body["format"] = self.format
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if self.think is not None:
            body["think"] = self.think
        return body


def build_request(model: str, *, prompt: str = "", messages: list[dict[str, Any]] | None = None,
                  stream: bool = True, **fields: Any) -> GenerateRequest:
    """A GenerateRequest from the library's keyword arguments (system, options, format, keep_alive, raw, think,
    images); an unknown keyword is a TypeError naming it."""
    if not isinstance(model, str) or not model:
        raise TypeError("model must be a non-empty string")
    given = {k: v for k, v in fields.items() if v is not None}
    if "options" in given:
        given["options"] = dict(given["options"])
    return GenerateRequest(model=model, prompt=prompt, messages=messages, stream=stream, **given)


def embed_payload(model: str, input: str | list[str], *, truncate: bool | None = None,
                  options: dict[str, Any] | None = None, keep_alive: str | int | float | None = None,
                  dimensions: int | None = None) -> dict[str, Any]:
    """The body of POST /api/embed."""
    body: dict[str, Any] = {"model": model, "input": input if isinstance(input, str) else list(input)}
    for key, value in (("truncate", truncate), ("options", options), ("keep_alive", keep_alive),
                       ("dimensions", dimensions)):
        if value is not None:
            body[key] = value
    return body


def embeddings_from(obj: Any) -> list[list[float]]:
    """The vectors of an /api/embed answer; anything else is a MalformedResponse."""
    vectors = obj.get("embeddings") if isinstance(obj, dict) else None
    if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
        from ollama_ops.errors import MalformedResponse

        raise MalformedResponse("/api/embed answered without an 'embeddings' list")
    return [[float(x) for x in v] for v in vectors]


@dataclass
class GenerateResult:
    """A finished (or cut-short) generation: the text and the server's timings."""

    model: str
    text: str
    done_reason: str
    timings: Timings
    extra: dict[str, Any] = field(default_factory=dict)


class ResultBuilder:
    """Accumulates stream events into a GenerateResult."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.final: FinalChunk | None = None

    def add(self, event: StreamEvent) -> None:
        if event.text:
            self.parts.append(event.text)
        if isinstance(event, FinalChunk):
            self.final = event

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def result(self) -> GenerateResult:
        final = self.final or FinalChunk(text="", done_reason="", timings=Timings())
        return GenerateResult(model=self.model, text=self.text, done_reason=final.done_reason,
                              timings=final.timings, extra=final.extra)


def result_from_object(model: str, obj: dict[str, Any]) -> GenerateResult:
    """A non-streamed answer (one JSON object) as a result."""
    from ollama_ops.core.ndjson import to_event

    builder = ResultBuilder(model)
    event = to_event(obj)
    builder.add(event if isinstance(event, FinalChunk) else TextChunk(event.text))
    if not isinstance(event, FinalChunk):
        builder.final = FinalChunk(text="", done_reason="", timings=Timings.from_chunk(obj))
    return builder.result()


def error_message(body: bytes | str) -> str:
    """The server's `{"error": ...}` text, or the raw body shortened."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and "error" in obj:
            err = obj["error"]  # OpenAI-style servers: {"error": {"message": ..., "type": ...}}
            return str(err.get("message") or err) if isinstance(err, dict) else str(err)
    except ValueError:
        pass
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def error_for_status(status: int, body: bytes | str, *, model: str | None = None) -> OllamaError:
    """Map an HTTP error answer to the typed exception (404 on a model call → ModelNotFound)."""
    message = error_message(body) or f"HTTP {status}"
    if status == 404 and model:
        return ModelNotFound(model, server_message=message)
    if status == 400:
        return BadRequest(f"bad request: {message}", status=status)
    if status == 503:
        return ServerBusy(f"server busy: {message}", status=status, hint="the queue is full; retry later")
    if status >= 500:
        return ServerError(f"server error: {message}", status=status)
    return OllamaError(f"HTTP {status}: {message}", status=status)


OUT_OF_FILES = (errno.EMFILE, errno.ENFILE)


def out_of_files(exc: BaseException) -> bool:
    """Whether `exc` (or an error it wraps: httpx and aiohttp wrap the OSError) is EMFILE/ENFILE: this process
    or the system ran out of file descriptors, so the failure is local, whatever the server does."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if getattr(current, "errno", None) in OUT_OF_FILES:
            return True
        todo += [current.__cause__, current.__context__, getattr(current, "os_error", None)]
    return False


def too_many_open_files(action: str = "lower --concurrency") -> LocalLimit:
    """The one message for running out of file descriptors (exit 1): which limit, and what to do."""
    try:
        import resource

        limit = f" (this process may open {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}; `ulimit -n`)"
    except (ImportError, OSError, ValueError):
        limit = ""
    return LocalLimit(f"too many open files{limit}", hint=f"{action}, or raise the limit")


def unreachable(base_url: str, exc: BaseException) -> ServerUnreachable | LocalLimit:
    """The one message for a failed connection, shared by both clients: 'connection refused', not errno noise.
    Out of file descriptors is a local error (exit 1), not an unreachable server (exit 4)."""
    if out_of_files(exc):
        return too_many_open_files("close other programs' connections or lower the load")
    code = getattr(exc, "errno", None) or getattr(getattr(exc, "os_error", None), "errno", None)
    reason = "connection refused" if code == errno.ECONNREFUSED else (str(exc) or type(exc).__name__)
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", reason)
    reason = re.sub(r"^Cannot connect to host \S+ ssl:\S+ \[(.*)\]$", r"\1", reason)  # aiohttp's wording
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", reason).strip() or type(exc).__name__
    return ServerUnreachable(f"cannot connect to Ollama at {base_url}: {reason[:1].lower()}{reason[1:]}",
                             hint="is it running? try `sollama start` or check --host")


def no_delay(transport: Any) -> None:
    """Turn Nagle's algorithm off on a transport's TCP socket (small request writes and streamed chunks go at once);
    a transport without one (a test double, a Unix socket) is left as it is."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass


def settle(waiter: Any) -> None:
    """Wake whoever awaits `waiter` (an asyncio future, or None when nobody waits); one already done is left."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
