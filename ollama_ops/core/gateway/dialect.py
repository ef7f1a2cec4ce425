"""Errors in the caller's dialect: Ollama's `{"error": "..."}` on /api, OpenAI's `{"error": {...}}` on /v1;
whole bodies before a response started, a stream line/event after (pure)."""

from __future__ import annotations

import json

BUSY = "server busy, please try again.  maximum pending requests exceeded"  # Ollama's own 503 wording
UNAUTHORIZED = "invalid or missing API key"

_V1_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
             429: "rate_limit_error", 502: "api_error", 503: "server_busy", 504: "timeout_error"}
_V1_CODES = {401: "invalid_api_key", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
             413: "request_too_large", 429: "rate_limit_exceeded", 502: "upstream_unreachable", 503: "server_busy",
             504: "upstream_timeout"}


def error_body(area: str, status: int, message: str) -> bytes:
    if area == "v1":
        err = {"message": message, "type": _V1_TYPES.get(status, "api_error"), "code": _V1_CODES.get(status)}
        return json.dumps({"error": err}).encode()
    return json.dumps({"error": message}).encode()


def stream_error(area: str, message: str, *, sse: bool) -> bytes:
    """The line (NDJSON) or event (SSE) that ends a stream which failed after its first byte."""
    if sse:
        err = {"message": message, "type": "api_error", "code": "upstream_error"}
        return b"data: " + json.dumps({"error": err}).encode() + b"\n\n"
    return json.dumps({"error": message}).encode() + b"\n"


def ndjson_ok(lines: bytes) -> bool:
    """Whether every line of a block of complete NDJSON lines looks like a JSON object (a cheap check on the hot
    path: first and last byte of each line; Ollama writes one object per line)."""
    # Ollama's own shape, checked by three C scans: `{…}\n` lines, each line break between `}` and `{`
    if lines[:1] == b"{" and lines[-2:] == b"}\n" and lines.count(b"\n") == lines.count(b"}\n{") + 1:
        return True
    for line in lines.split(b"\n"):
        line = line.strip()
        if line and not (line[:1] == b"{" and line[-1:] == b"}"):
            return False
    return True
