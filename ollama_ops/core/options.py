"""Ollama request options (`--option key=value`), typed by Ollama's own option schema (pure)."""

from __future__ import annotations

import difflib
import json
import math
from typing import Any

from ollama_ops.errors import UsageError

# api.Options / api.Runner in Ollama: the type of each option the server accepts.
OPTION_TYPES: dict[str, type] = {
    "num_keep": int, "seed": int, "num_predict": int, "top_k": int, "top_p": float, "min_p": float,
    "typical_p": float, "repeat_last_n": int, "temperature": float, "repeat_penalty": float,
    "presence_penalty": float, "frequency_penalty": float, "stop": list,
    "num_ctx": int, "num_batch": int, "num_gpu": int, "main_gpu": int, "use_mmap": bool, "num_thread": int,
}


def parse_option_value(raw: str) -> Any:
    """'0.2' → 0.2, '42' → 42, 'true' → True, '["a"]' → ['a']; anything else stays a string."""
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return raw


def coerce_option(key: str, value: Any) -> Any:
    """Check `value` against the option's type; raise UsageError naming the option otherwise."""
    if key not in OPTION_TYPES:
        close = difflib.get_close_matches(key, list(OPTION_TYPES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown option '{key}'{hint}")
    expected = OPTION_TYPES[key]
    if expected is list:
        return value if isinstance(value, list) else [str(value)]
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UsageError(f"option '{key}' must be a finite number, got {value!r}")
            return float(value)
    raise UsageError(f"option '{key}' must be {expected.__name__}, got {value!r}")


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """`["temperature=0.2", "stop=\\n"]` → typed options dict. Repeated `stop` accumulates."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"expected --option KEY=VALUE, got {pair!r}")
        value = coerce_option(key, raw if key == "stop" else parse_option_value(raw))
        if key == "stop" and "stop" in options:
            value = options["stop"] + value
        options[key] = value
    return options
