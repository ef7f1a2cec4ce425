"""Ollama's streamed NDJSON lines → typed events (pure).

Each line of `/api/generate` or `/api/chat` is one JSON object; the last has `done: true` and the server's
timings in nanoseconds (any metric may be missing: treated as 0). After a stream has started, a failure
arrives as a line `{"error": "..."}` although HTTP 200 was already sent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ollama_ops.errors import MalformedResponse, ServerError

NS = 1e-9


@dataclass(slots=True)
class Timings:
    """The server's own account of a request, in seconds (counts in tokens)."""

    total: float = 0.0
    load: float = 0.0
    prompt_eval: float = 0.0
    eval: float = 0.0
    prompt_eval_count: int = 0
    eval_count: int = 0

    @classmethod
    def from_chunk(cls, obj: dict[str, Any]) -> Timings:
        def number(key: str) -> float:
            # A metric that is missing, not a number, or beyond a float (a broken server) counts as 0.
            value = obj.get(key) or 0
            try:
                number = float(value) if isinstance(value, (int, float)) else 0.0
            except OverflowError:
                return 0.0
            return number if math.isfinite(number) else 0.0

        def ns(key: str) -> float:
            return number(key) * NS

        def count(key: str) -> int:
            return int(number(key))

        return cls(total=ns("total_duration"), load=ns("load_duration"),
                   prompt_eval=ns("prompt_eval_duration"), eval=ns("eval_duration"),
                   prompt_eval_count=count("prompt_eval_count"), eval_count=count("eval_count"))

    @property
    def prompt_eval_rate(self) -> float:
        """Prompt tokens per second (0 when unknown)."""
        return self.prompt_eval_count / self.prompt_eval if self.prompt_eval > 0 else 0.0

    @property
    def eval_rate(self) -> float:
        """Generated tokens per second (0 when unknown)."""
        return self.eval_count / self.eval if self.eval > 0 else 0.0

    @property
    def has_eval_count(self) -> bool:
        return self.eval_count > 0


@dataclass(slots=True)
class TextChunk:
    """A piece of the answer (possibly empty, e.g. a role-only chat chunk)."""

    text: str
    thinking: str = ""


@dataclass(slots=True)
class FinalChunk:
    """The closing line: why generation stopped and what the server measured."""

    text: str
    done_reason: str
    timings: Timings
    extra: dict[str, Any] = field(default_factory=dict)  # model, created_at, context, tool_calls …


StreamEvent = TextChunk | FinalChunk


def parse_line(line: bytes | str) -> dict[str, Any]:
    """Decode one NDJSON line; a line that is not a JSON object raises MalformedResponse naming its bytes."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        obj = None
    if not isinstance(obj, dict):
        raw = line if isinstance(line, str) else line.decode("utf-8", "replace")
        shown = raw.strip()
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise MalformedResponse(f"malformed line in the server's stream: {shown!r}")
    return obj


def chunk_text(obj: dict[str, Any]) -> tuple[str, str]:
    """(text, thinking) of a generate or chat chunk."""
    message = obj.get("message")
    if isinstance(message, dict):
        return str(message.get("content") or ""), str(message.get("thinking") or "")
    return str(obj.get("response") or ""), str(obj.get("thinking") or "")


def to_event(obj: dict[str, Any]) -> StreamEvent:
    """Turn a decoded chunk into an event; an `{"error"}` line raises ServerError."""
    if "error" in obj:
        raise ServerError(f"server error: {obj['error']}")
    text, thinking = chunk_text(obj)
    if obj.get("done"):
        extra = {k: v for k, v in obj.items()
                 if k not in ("response", "done", "done_reason") and not k.endswith(("_duration", "_count"))}
        return FinalChunk(text=text, done_reason=str(obj.get("done_reason") or ""),
                          timings=Timings.from_chunk(obj), extra=extra)
    return TextChunk(text=text, thinking=thinking)


def parse_event(line: bytes | str) -> StreamEvent:
    """parse_line + to_event."""
    return to_event(parse_line(line))
