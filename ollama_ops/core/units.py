"""Parsing and formatting of sizes and durations (pure)."""

from __future__ import annotations

import math
import re
from decimal import Decimal

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_MAX_SIZE = 2**63 - 1
_DURATION_RE = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_size(text: str | int) -> int:
    """'2GiB' → 2147483648; plain integers are bytes. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError("must be a size, not true/false")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("must not be negative")
        return text
    match = _SIZE_RE.match(str(text))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"is not a size like '2GiB' or '500MB': {text!r:.40}")
    # Decimal, not float: '72057594037929k' must be exact, and a long digit string must not become inf.
    value = int(Decimal(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if value > _MAX_SIZE:
        raise ValueError(f"is too large: {text!r:.40}")
    return value


def parse_reserve(value: str | int) -> tuple[str, float]:
    """A memory reserve: ('percent', 20.0) for '20%', ('bytes', n) for a size. Raises ValueError."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"must be a percent like '20%' or a size like '2GiB', got {value!r:.40}") from None
        if not 0 <= pct < 100:
            raise ValueError(f"percent must be in [0, 100), got {value!r:.40}")
        return "percent", pct
    try:
        return "bytes", float(parse_size(value))
    except ValueError:
        raise ValueError(f"must be a percent like '20%' or a size like '2GiB', got {value!r:.40}") from None


def parse_duration(value: str | int | float) -> float:
    """Seconds from a number or a Go duration string ('10m', '1h30m', '250ms'). Raises ValueError, also for
    nan and infinities."""
    if isinstance(value, bool):
        raise ValueError("must be a duration, not true/false")
    try:
        seconds = float(value) if isinstance(value, (int, float)) else _seconds(value.strip(), value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"is not a finite duration: {value!r:.40}")
    return seconds


def parse_window(value: str) -> float:
    """Seconds from an age or a time window: a number of seconds, a Go duration ('12h', '90m'), or days/weeks
    ('30d', '2w', '1.5d'). The one parser of `cleanup --older-than`, `report --since` and the config's windows.
    Raises ValueError, also for nan and infinities; the sign is the caller's bound to check."""
    text = value.strip().lower()
    scale = {"d": 86400.0, "w": 604800.0}.get(text[-1:]) if text else None
    try:
        seconds = float(text[:-1]) * scale if scale else _seconds(text, value)
    except ValueError:
        raise ValueError(f"is not a duration like '30d', '2w' or '12h': {value!r:.40}") from None
    if not math.isfinite(seconds):
        raise ValueError(f"is not a finite duration: {value!r:.40}")
    return seconds


def _seconds(text: str, value: object) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"is not a duration like '10m', '30s' or '250ms': {value!r:.40}")
    return total


def format_bytes(n: float | None) -> str:
    """1536 → '1.5 KiB'."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def format_seconds(s: float | None) -> str:
    """Human duration: '850 ms', '2.41 s', '3m12s'."""
    if s is None:
        return "-"
    if abs(s) < 1:
        return f"{s * 1000:.0f} ms" if abs(s) >= 0.0095 else f"{s * 1000:.2f} ms"
    if abs(s) < 60:
        return f"{s:.2f} s"
    minutes, sec = divmod(int(s), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
