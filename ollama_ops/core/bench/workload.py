"""Recorded workloads (pure): `--dataset FILE` (conversations, turns in order) and `--trace FILE` (requests on their
own timeline), parsed from JSONL with one-line errors naming the line at fault.

Dataset, one conversation a line: `{"prompt": "..."}` (one turn) or `{"messages": [{"role", "content"}, ...]}`,
where every user message is a turn: turn j sends the messages up to and including the j-th user message (the
recorded assistant answers stay in the history, so a server's prefix cache sees each turn extend the last).
Optional `"max_tokens"` per line bounds the answers of that conversation.

Trace, one request a line: `{"timestamp": 12.5, "prompt_tokens": 512, "output_tokens": 128}` (a synthetic prompt
of that length by the server's count) or `{"timestamp": 12.5, "prompt": "..." | "messages": [...],
"output_tokens": 128}`. Timestamps are seconds (any origin; the first request is sent at 0), in order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ollama_ops.core.bench.prompts import PromptItem

ROLES = frozenset({"system", "user", "assistant", "tool"})
MAX_ENTRIES = 1_000_000
MAX_TOKENS = 1 << 20
MAX_SPAN_S = 7 * 86400.0  # a trace longer than a week is a mistake (timestamps in ms?)


@dataclass(frozen=True)
class TraceEntry:
    """One request of a trace: when (seconds after the first), and what (a prompt, or a synthetic length)."""

    offset: float
    item: PromptItem | None = None  # a recorded prompt / message list
    prompt_tokens: int | None = None  # else a synthetic prompt of this many server tokens
    output_tokens: int | None = None


def _lines(text: str, name: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise ValueError(f"{name}:{number}: not a JSON object") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{name}:{number}: not a JSON object")
        out.append((number, obj))
        if len(out) > MAX_ENTRIES:
            raise ValueError(f"{name}: more than {MAX_ENTRIES} lines")
    if not out:
        raise ValueError(f"{name}: no entries")
    return out


def _count(obj: dict[str, Any], key: str, where: str, low: int = 1) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if value.__class__ is not int or not low <= value <= MAX_TOKENS:
        raise ValueError(f"{where}: \"{key}\" must be a whole number from {low} to {MAX_TOKENS}, got {value!r}")
    return int(value)


def _messages(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: \"messages\" must be a non-empty list")
    for m in value:
        if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
            raise ValueError(f"{where}: every message needs a \"role\" ({', '.join(sorted(ROLES))}) and a "
                             f"\"content\" string")
    if not any(m["role"] == "user" for m in value):
        raise ValueError(f"{where}: no user message")
    return tuple(value)


def _item(obj: dict[str, Any], where: str) -> PromptItem | None:
    if "messages" in obj:
        return PromptItem(messages=_messages(obj["messages"], where))
    prompt = obj.get("prompt")
    if prompt is None:
        return None
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"{where}: \"prompt\" must be a non-empty string")
    return PromptItem(prompt=prompt)


def parse_dataset(text: str, name: str = "dataset") -> list[list[PromptItem]]:
    """Conversations, each the list of its turns in order. Raises ValueError naming the line at fault."""
    conversations = []
    for number, obj in _lines(text, name):
        where = f"{name}:{number}"
        item = _item(obj, where)
        if item is None:
            raise ValueError(f"{where}: needs a \"prompt\" string or a \"messages\" list")
        limit = _count(obj, "max_tokens", where)
        if item.messages is None:
            conversations.append([PromptItem(prompt=item.prompt, max_tokens=limit)])
            continue
        turns = []
        for i, m in enumerate(item.messages):
            if m["role"] == "user":
                turns.append(PromptItem(messages=item.messages[:i + 1], max_tokens=limit))
        conversations.append(turns)
    return conversations


def parse_trace(text: str, name: str = "trace") -> list[TraceEntry]:
    """The trace's requests with their offsets from the first. Raises ValueError naming the line at fault."""
    entries = []
    first = last = None
    for number, obj in _lines(text, name):
        where = f"{name}:{number}"
        stamp = obj.get("timestamp")
        if stamp.__class__ not in (int, float) or not math.isfinite(stamp):
            raise ValueError(f"{where}: needs a \"timestamp\" number (seconds)")
        if last is not None and stamp < last:
            raise ValueError(f"{where}: timestamps must not go back ({stamp:g} after {last:g})")
        first = stamp if first is None else first
        last = stamp
        if stamp - first > MAX_SPAN_S:
            raise ValueError(f"{where}: the trace spans more than a week (timestamps must be seconds)")
        item = _item(obj, where)
        prompt_tokens = _count(obj, "prompt_tokens", where)
        if (item is None) == (prompt_tokens is None):
            raise ValueError(f"{where}: needs exactly one of \"prompt\", \"messages\" or \"prompt_tokens\"")
        entries.append(TraceEntry(offset=float(stamp - first), item=item, prompt_tokens=prompt_tokens,
                                  output_tokens=_count(obj, "output_tokens", where)))
    return entries
