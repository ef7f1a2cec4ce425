"""Limit arithmetic and token accounting (pure): the RateLimit-* headers, Retry-After, and the token counts a
response reports (Ollama's `prompt_eval_count` + `eval_count`, or the OpenAI `usage`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MINUTE = 60
DAY = 86400


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one limit: allowed or not, and what the RateLimit-* headers say."""

    allowed: bool
    name: str  # "rpm" | "tpm" | "concurrency" | "daily_tokens"
    limit: int
    remaining: int
    reset_s: float  # seconds until the window resets (0 for concurrency)

    def headers(self) -> dict[str, str]:
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(max(0, self.remaining)),
               "RateLimit-Reset": str(max(0, math.ceil(self.reset_s)))}
        if not self.allowed:
            out["Retry-After"] = str(retry_after(self.reset_s))
        return out

    def message(self) -> str:
        what = {"rpm": "requests per minute", "tpm": "tokens per minute", "concurrency": "concurrent requests",
                "daily_tokens": "tokens per day"}.get(self.name, self.name)
        return f"rate limit exceeded: {self.limit} {what} for this key; retry in {retry_after(self.reset_s)} s"


def retry_after(seconds: float) -> int:
    """Whole seconds, rounded up, at least 1 (a 0 would invite an immediate retry that fails again)."""
    if not math.isfinite(seconds):
        return 1
    return max(1, math.ceil(seconds))


def tightest(verdicts: list[Verdict]) -> Verdict | None:
    """The verdict to report: the first refusal, else the allowing limit with the least left (for headers)."""
    refused = [v for v in verdicts if not v.allowed]
    if refused:
        return max(refused, key=lambda v: v.reset_s)
    return min(verdicts, key=lambda v: (v.remaining / v.limit) if v.limit else 1.0, default=None)


_FIELDS = {name: re.compile(rb'"' + name.encode() + rb'"\s*:\s*(\d+)')
           for name in ("prompt_eval_count", "eval_count", "prompt_tokens", "completion_tokens")}


def _last(name: str, tail: bytes) -> int | None:
    found = _FIELDS[name].findall(tail)
    return int(found[-1]) if found else None


def tokens_in(tail: bytes, *, sse_events: int = 0) -> tuple[int, int]:
    """(prompt tokens, output tokens) that the end of a response body reports: Ollama's `prompt_eval_count` and
    `eval_count` (last NDJSON line or the JSON body), else the OpenAI `usage`. Both sit in the last few hundred
    bytes, so `tail` need only hold the body's end; a model's text cannot forge them (its quotes are escaped).
    An OpenAI stream without `usage` (no `stream_options.include_usage`) is counted by its events, one token
    each, as Ollama sends them; `sse_events` is that count."""
    prompt, output = _last("prompt_eval_count", tail), _last("eval_count", tail)
    if prompt is None and output is None:
        prompt, output = _last("prompt_tokens", tail), _last("completion_tokens", tail)
    if prompt is None and output is None:
        return 0, max(0, sse_events)
    return prompt or 0, output or 0
