"""The path allow-list: which method + path the gateway forwards, how, and to whom (pure).

Only these paths reach the upstream, always rebuilt from the table (never from the caller's bytes beyond a
checked model or blob name), so the gateway is no open proxy: no other paths, no `..`, no absolute URIs, no
percent-encoded tricks, no query strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    INFER = "infer"  # queued for a slot; tokens charged
    META = "meta"  # answered at once (no slot): show, version
    LIST = "list"  # a model listing, filtered to what the key may use
    ADMIN = "admin"  # model management: admin keys only


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the template, also the metrics label
    area: str  # "api" (Ollama-native dialect) or "v1" (OpenAI dialect)
    kind: Kind
    summary: str
    model_fields: tuple[str, ...] = ()  # body fields naming a model, checked against the key's patterns
    stream_default: bool = False  # whether the route streams when the body does not say "stream"


ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/generate", "api", Kind.INFER, "Generate a completion (NDJSON stream)", ("model",), True),
    Route("POST", "/api/chat", "api", Kind.INFER, "Chat (NDJSON stream)", ("model",), True),
    Route("POST", "/api/embed", "api", Kind.INFER, "Embeddings", ("model",)),
    Route("POST", "/api/embeddings", "api", Kind.INFER, "Embeddings (legacy)", ("model",)),
    Route("POST", "/api/show", "api", Kind.META, "Model details", ("model", "name")),
    Route("GET", "/api/tags", "api", Kind.LIST, "Installed models the key may use"),
    Route("GET", "/api/ps", "api", Kind.LIST, "Loaded models the key may use"),
    Route("GET", "/api/version", "api", Kind.META, "Ollama's version"),
    Route("POST", "/api/pull", "api", Kind.ADMIN, "Pull a model (admin)", ("model", "name")),
    Route("POST", "/api/push", "api", Kind.ADMIN, "Push a model (admin)", ("model", "name")),
    Route("POST", "/api/create", "api", Kind.ADMIN, "Create a model (admin)", ("model", "name")),
    Route("POST", "/api/copy", "api", Kind.ADMIN, "Copy a model (admin)", ("source", "destination")),
    Route("DELETE", "/api/delete", "api", Kind.ADMIN, "Delete a model (admin)", ("model", "name")),
    Route("POST", "/api/blobs/{digest}", "api", Kind.ADMIN, "Upload a blob (admin)"),
    Route("HEAD", "/api/blobs/{digest}", "api", Kind.ADMIN, "Check a blob (admin)"),
    Route("POST", "/v1/chat/completions", "v1", Kind.INFER, "OpenAI chat completions (SSE stream)", ("model",)),
    Route("POST", "/v1/completions", "v1", Kind.INFER, "OpenAI completions (SSE stream)", ("model",)),
    Route("POST", "/v1/embeddings", "v1", Kind.INFER, "OpenAI embeddings", ("model",)),
    Route("GET", "/v1/models", "v1", Kind.LIST, "OpenAI model list, filtered to what the key may use"),
    Route("GET", "/v1/models/{model}", "v1", Kind.META, "One OpenAI model"),
)

_EXACT = {(r.method, r.path): r for r in ROUTES if "{" not in r.path}
_BLOB = re.compile(r"/api/blobs/sha256[:-][0-9a-f]{64}")
_V1_MODEL = re.compile(r"/v1/models/[A-Za-z0-9][A-Za-z0-9._:\-]*(?:/[A-Za-z0-9][A-Za-z0-9._:\-]*)?")
_BY_TEMPLATE = {(r.method, r.path): r for r in ROUTES if "{" in r.path}


@dataclass(frozen=True)
class Match:
    route: Route
    path: str  # the exact path to request upstream (checked)
    path_model: str | None = None  # a model named in the path (/v1/models/{model})


class NotAllowed(Exception):
    """The path is not one the gateway forwards: 404, or 405 when the path exists for another method."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def area_of(path: str) -> str:
    return "v1" if path.startswith("/v1/") or path == "/v1" else "api"


def match(method: str, path: str, raw_path: bytes | None = None) -> Match:
    """The route for `method` `path`, or NotAllowed. `raw_path` (the bytes as sent) must carry no percent
    escapes, so what was checked is exactly what is forwarded."""
    if raw_path is not None and (b"%" in raw_path or raw_path.decode("latin-1") != path):
        raise NotAllowed(404)
    if not path.startswith("/") or "//" in path or "/." in path or "\\" in path:
        raise NotAllowed(404)
    method = method.upper()
    route = _EXACT.get((method, path))
    if route is not None:
        return Match(route, path)
    if _BLOB.fullmatch(path):
        route = _BY_TEMPLATE.get((method, "/api/blobs/{digest}"))
        if route is None:
            raise NotAllowed(405)
        return Match(route, path)
    if _V1_MODEL.fullmatch(path):
        route = _BY_TEMPLATE.get((method, "/v1/models/{model}"))
        if route is None:
            raise NotAllowed(405)
        return Match(route, path, path_model=path.removeprefix("/v1/models/"))
    if any(p == path for (_, p) in _EXACT):
        raise NotAllowed(405)
    raise NotAllowed(404)


def body_models(route: Route, body: object) -> list[str] | None:
    """The model names a request body names in the route's model fields (strings only). None when the body is
    not a JSON object."""
    if not isinstance(body, dict):
        return None
    return [v for f in route.model_fields if isinstance(v := body.get(f), str) and v]


def wants_stream(route: Route, body: object) -> bool:
    if isinstance(body, dict) and isinstance(body.get("stream"), bool):
        return bool(body["stream"])
    return route.stream_default
