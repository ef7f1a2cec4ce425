"""The OpenAI streaming answer (pure): Server-Sent Events of `chat.completion.chunk` / `text_completion` objects,
decoded incrementally as bytes arrive, every chunk that carries text clocked.

What the OpenAI-compatible servers send (Ollama 0.23's /v1, vLLM, llama.cpp, SGLang, TGI):

    data: {"choices":[{"index":0,"delta":{"content":"The"},"finish_reason":null}], ...}\n\n
    ...
    data: {"choices":[{"index":0,"delta":{"content":""},"finish_reason":"length"}], ...}\n\n
    data: {"choices":[],"usage":{"prompt_tokens":15,"completion_tokens":5,"total_tokens":20}}\n\n
    data: [DONE]\n\n

The usage object (asked for with `stream_options: {include_usage: true}`) carries the server's token counts; Ollama
also puts an all-zero usage on every /v1/completions chunk, so only the last non-zero one counts. The decoded answer
is shaped like Ollama's final NDJSON chunk (`done`, `done_reason`, `eval_count`, `prompt_eval_count`) so one record
builder serves every API; it has no durations: OpenAI servers give no server-side timings.

Faults raise `StreamError` with the same kinds as the NDJSON path: `malformed` (a data line that is not a JSON
object, or a line that is not SSE at all), `server_error` (an `{"error": …}` event). A stream that ends without
`[DONE]` and without a finish reason is incomplete: `end` returns None and the caller reports a disconnect.
"""

from __future__ import annotations

import json
from typing import Any

_FAST = b'"finish_reason":null'
_ERROR = b'"error"'
# A text chunk's key with a non-empty string value (an escaped quote inside text never matches: it reads \").
_TEXT_KEYS = (b'"content":"', b'"text":"', b'"reasoning_content":"', b'"reasoning":"')
_EMPTY_KEYS = (b'"content":""', b'"text":""', b'"reasoning_content":""', b'"reasoning":""')
_FIELDS = (b"event", b"id", b"retry")


class StreamError(ValueError):
    """A stream that cannot be read on; `kind` is the request's error kind (malformed | server_error)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _has_text_fast(payload: bytes) -> bool:
    for key, empty in zip(_TEXT_KEYS, _EMPTY_KEYS, strict=True):
        if key in payload and payload.count(key) > payload.count(empty):
            return True
    return False


def _choice_text(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        for key in ("content", "reasoning_content", "reasoning"):
            value = delta.get(key)
            if isinstance(value, str) and value:
                return True
    text = choice.get("text")
    return isinstance(text, str) and bool(text)


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message") or error
    return str(error)[:200]


class SseDecoder:
    """One streamed OpenAI answer. `feed` takes the body's bytes as they arrive and appends `now` to `times` for
    every event that carries text; it returns the answer once `[DONE]` arrived (else None). `end` is called when
    the body ended: it returns the answer if the stream was complete, else None."""

    __slots__ = ("rest", "pending", "usage", "finish", "done")

    def __init__(self) -> None:
        self.rest = b""
        self.pending: list[bytes] = []
        self.usage: dict[str, Any] | None = None
        self.finish: str | None = None
        self.done = False

    def feed(self, data: bytes, now: float, times: list[float]) -> dict[str, Any] | None:
        lines = (self.rest + data).split(b"\n") if self.rest else data.split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            if self.done:
                break
            self._line(line, now, times)
        return self.answer() if self.done else None

    def end(self, now: float, times: list[float]) -> dict[str, Any] | None:
        """The body ended: the answer if the stream was complete ([DONE], or a finish reason), else None. An event
        without its closing blank line is discarded, as the SSE standard says (it was cut)."""
        self.rest, self.pending = b"", []
        return self.answer() if self.done or self.finish is not None else None

    def answer(self) -> dict[str, Any]:
        """The stream's outcome, shaped like Ollama's final chunk (no durations: the server gives none)."""
        out: dict[str, Any] = {"done": True, "done_reason": self.finish}
        usage = self.usage or {}
        completion, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
        if completion.__class__ is int:
            out["eval_count"] = completion
        if prompt.__class__ is int:
            out["prompt_eval_count"] = prompt
        return out

    def _line(self, line: bytes, now: float, times: list[float]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:  # the blank line ends an event
            if self.pending:
                payload = self.pending[0] if len(self.pending) == 1 else b"\n".join(self.pending)
                self.pending = []
                self._event(payload, now, times)
            return
        if line.startswith(b"data:"):
            value = line[5:]
            self.pending.append(value[1:] if value.startswith(b" ") else value)
            return
        if line.startswith(b":"):  # a comment (keep-alive)
            return
        name = line.split(b":", 1)[0]
        if name not in _FIELDS:
            shown = line.decode("utf-8", "replace")[:80]
            raise StreamError("malformed", f"not a server-sent event line: {shown!r}")

    def _event(self, payload: bytes, now: float, times: list[float]) -> None:
        # The bulk of all events (one per token) is settled by its bytes, without json.loads.
        if _FAST in payload and _ERROR not in payload:
            if _has_text_fast(payload):
                times.append(now)
            return
        if payload.strip() == b"[DONE]":
            self.done = True
            return
        try:
            obj = json.loads(payload)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            shown = payload.decode("utf-8", "replace").strip()[:80]
            raise StreamError("malformed", f"malformed event in the stream: {shown!r}")
        if obj.get("error") is not None:
            raise StreamError("server_error", f"server error: {_error_text(obj['error'])}")
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            if _choice_text(choice):
                times.append(now)
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self.finish = reason
        usage = obj.get("usage")
        if isinstance(usage, dict) and any(v for v in usage.values() if v.__class__ is int):
            self.usage = usage
