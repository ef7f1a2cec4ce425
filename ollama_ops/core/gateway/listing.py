"""The model listings of several hosts as one answer (pure): what `/api/tags`, `/api/ps` and `/v1/models` return
through a gateway over several Ollama hosts, and the cut of a listing to the models a key may use.

A client of Ollama's API expects each model once per listing (`ollama list`, `ollama ps`, an OpenAI model
picker), so the answers are merged by model name (as Ollama matches names: "SmolLM2" is "smollm2:latest"):
- `/api/tags`: the union of installed models; the first host's entry (in `gateway.upstreams` order) stands.
- `/api/ps`: each loaded model once, even when several hosts hold it: the entry that expires last (the model stays
  loaded somewhere until then; its `size` is that host's). Per-host detail is `sollama status --fleet`'s job.
- `/v1/models`: the union by `id`.
Then the order Ollama itself uses: newest first (`modified_at`, `expires_at`, `created`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ollama_ops.core.gateway.keys import model_allowed
from ollama_ops.core.gateway.routing import normalize_model

# route path -> (list field, name field, time field, keep the entry with the latest time when names repeat)
SHAPES: dict[str, tuple[str, str, str, bool]] = {
    "/api/tags": ("models", "name", "modified_at", False),
    "/api/ps": ("models", "name", "expires_at", True),
    "/v1/models": ("data", "id", "created", False),
}


def _name(entry: dict, name_field: str) -> str:
    value = entry.get(name_field) or entry.get("model") or ""
    return value if isinstance(value, str) else ""


def _when(value: Any) -> float | None:
    """A sortable time: seconds (an int, /v1/models' `created`) or an RFC 3339 string (Go writes nanoseconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most 6 fractional digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}" if digits else head + rest
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def merge_listings(path: str, docs: list[Any]) -> dict[str, Any]:
    """One listing from several hosts' answers (in host order); entries that are not objects with a name are
    dropped, other top-level fields come from the first answer."""
    list_field, name_field, time_field, latest_wins = SHAPES[path]
    first = next((d for d in docs if isinstance(d, dict)), {})
    merged: dict[str, dict] = {}
    for doc in docs:
        items = doc.get(list_field) if isinstance(doc, dict) else None
        for entry in items if isinstance(items, list) else ():
            name = _name(entry, name_field) if isinstance(entry, dict) else ""
            if not name.strip():
                continue
            key = normalize_model(name)
            seen = merged.get(key)
            if seen is None:
                merged[key] = entry
            elif latest_wins and (_when(entry.get(time_field)) or 0.0) > (_when(seen.get(time_field)) or 0.0):
                merged[key] = entry
    entries = list(merged.values())
    times = [_when(e.get(time_field)) for e in entries]
    if all(t is not None for t in times):  # Ollama's order: newest first (stable: host order among equals)
        order = sorted(range(len(entries)), key=lambda i: -(times[i] or 0.0))
        entries = [entries[i] for i in order]
    out = {k: v for k, v in first.items() if k != list_field}
    if path == "/v1/models":
        out.setdefault("object", "list")
    out[list_field] = entries
    return out


def filter_listing(doc: Any, patterns: list[str]) -> Any:
    """/api/tags, /api/ps (`models[].name`) and /v1/models (`data[].id`) cut to the models a key may use."""
    if isinstance(doc, dict):
        for list_field, name_field in (("models", "name"), ("data", "id")):
            items = doc.get(list_field)
            if isinstance(items, list):
                doc[list_field] = [m for m in items if isinstance(m, dict)
                                   and model_allowed(patterns, str(m.get(name_field) or m.get("model") or ""))]
    return doc
