"""Which server APIs the bench speaks (pure): Ollama's native `generate | chat` (NDJSON) and the OpenAI-compatible
`openai-chat | openai-completions` (server-sent events), their paths, request bodies and extra headers.

OpenAI bodies ask for the server's token counts with `stream_options: {include_usage: true}` and bound the output
with `max_tokens`: Ollama 0.23's /v1 ignores `max_completion_tokens` and honours `max_tokens`, and so do vLLM,
llama.cpp, SGLang and TGI. Ollama options with an OpenAI equivalent are mapped; any other is refused (an OpenAI
server would silently ignore it, and the run would not measure what was asked).
"""

from __future__ import annotations

import re
from typing import Any

API_PATHS = {"generate": "/api/generate", "chat": "/api/chat", "openai-chat": "/v1/chat/completions",
             "openai-completions": "/v1/completions"}
APIS = tuple(API_PATHS)
OPENAI_APIS = ("openai-chat", "openai-completions")
NO_BREAKDOWN = "absent: the OpenAI API reports no server timings (load, prompt eval, eval)"

# Ollama option → the OpenAI request field that means the same.
OPENAI_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop",
                  "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty"}

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110 token)
# Headers the bench itself writes (framing and routing): a user's value would corrupt the request.
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection",
                              "user-agent", "expect", "upgrade", "te", "trailer"})
MAX_HEADERS = 64
MAX_HEADER_BYTES = 8192


def is_openai(api: str) -> bool:
    return api in OPENAI_APIS


def openai_body(*, model: str, api: str, prompt: str | None, messages: list[dict[str, Any]] | None,
                max_tokens: int | None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of one streamed OpenAI request. Raises ValueError for a chat message list with
    openai-completions, or an option the OpenAI API cannot carry."""
    body: dict[str, Any] = {"model": model, "stream": True, "stream_options": {"include_usage": True}}
    if api == "openai-chat":
        body["messages"] = messages if messages else [{"role": "user", "content": prompt}]
    elif messages:
        raise ValueError("the prompts hold chat message lists; use --api openai-chat")
    else:
        body["prompt"] = prompt
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    for key, value in (options or {}).items():
        if key == "num_predict":
            body.setdefault("max_tokens", value)
        elif key in OPENAI_OPTIONS:
            body[OPENAI_OPTIONS[key]] = value
        else:
            raise ValueError(f"option '{key}' has no OpenAI API equivalent (--api {api} can send: "
                             f"{', '.join(OPENAI_OPTIONS)})")
    return body


def parse_headers(pairs: list[str] | None, api_key: str | None = None) -> dict[str, str]:
    """`["X-Team: a", "X-Env:b"]` (+ `--api-key`) → headers to send with every request. Raises ValueError with a
    one-line reason: not NAME:VALUE, a name that is not an HTTP token, a control character in a value, a header the
    bench writes itself, a repeated name, or too many/too long."""
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for pair in pairs or []:
        name, sep, value = pair.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ValueError(f"--header must be NAME:VALUE, got {pair[:60]!r}")
        if not _TOKEN.match(name):
            raise ValueError(f"--header name {name[:60]!r} is not a valid HTTP header name")
        if any(ord(c) < 32 and c != "\t" or ord(c) == 127 or ord(c) > 126 for c in value):
            raise ValueError(f"--header {name}: the value must be printable ASCII (no control characters)")
        low = name.lower()
        if low in RESERVED_HEADERS:
            raise ValueError(f"--header {name}: the bench sets this header itself")
        if low in seen:
            raise ValueError(f"--header {name} is given twice")
        if low == "authorization" and api_key is not None:
            raise ValueError("--api-key and --header Authorization exclude each other")
        seen.add(low)
        headers[name] = value
    if api_key is not None:
        if not api_key or any(ord(c) <= 32 or ord(c) > 126 for c in api_key):
            raise ValueError("--api-key must be non-empty printable ASCII without spaces")
        headers["Authorization"] = f"Bearer {api_key}"
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} --header values")
    if sum(len(k) + len(v) + 4 for k, v in headers.items()) > MAX_HEADER_BYTES:
        raise ValueError(f"the --header values exceed {MAX_HEADER_BYTES} bytes")
    return headers


def header_names(headers: dict[str, str]) -> list[str]:
    """What a stored run keeps of its headers: the names only (values may be secrets)."""
    return sorted(headers)
