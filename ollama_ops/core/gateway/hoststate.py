"""What a poll of one Ollama host says (pure): `/api/version`, `/api/tags`, `/api/ps` answers → typed values.

Ollama's answers are read leniently (a missing field is empty, a malformed entry is skipped): a host that answers
oddly is still a host; only no answer at all makes it down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ollama_ops.core.gateway.routing import normalize_model


@dataclass(frozen=True)
class LoadedModel:
    name: str
    size: int = 0  # bytes, as /api/ps reports (the whole allocation)
    size_vram: int = 0
    expires_at: str = ""  # RFC 3339 from Ollama, "" when absent
    context_length: int = 0


@dataclass(frozen=True)
class HostPoll:
    """One successful poll of a host."""

    version: str = ""
    installed: frozenset[str] = field(default_factory=frozenset)
    loaded: tuple[LoadedModel, ...] = ()

    @property
    def loaded_names(self) -> frozenset[str]:
        return frozenset(m.name for m in self.loaded)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def parse_version(payload: Any) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("version"), str):
        return payload["version"][:64]
    return ""


def parse_tags(payload: Any) -> frozenset[str]:
    """Installed model names (normalized) from `/api/tags` `{"models": [{"name"|"model": ...}]}`."""
    names: set[str] = set()
    models = payload.get("models") if isinstance(payload, dict) else None
    for entry in models if isinstance(models, list) else ():
        if not isinstance(entry, dict):
            continue
        for key in ("name", "model"):
            value = entry.get(key)
            if isinstance(value, str) and value.strip():
                names.add(normalize_model(value))
    return frozenset(names)


def parse_ps(payload: Any) -> tuple[LoadedModel, ...]:
    """Loaded models from `/api/ps`, sorted by name."""
    out: dict[str, LoadedModel] = {}
    models = payload.get("models") if isinstance(payload, dict) else None
    for entry in models if isinstance(models, list) else ():
        if not isinstance(entry, dict):
            continue
        raw = entry.get("name") or entry.get("model")
        if not isinstance(raw, str) or not raw.strip():
            continue
        name = normalize_model(raw)
        expires = entry.get("expires_at")
        out[name] = LoadedModel(name, _int(entry.get("size")), _int(entry.get("size_vram")),
                                expires if isinstance(expires, str) else "", _int(entry.get("context_length")))
    return tuple(out[k] for k in sorted(out))


def host_poll(version: Any, tags: Any, ps: Any) -> HostPoll:
    """The poll's result; a model loaded but missing from /api/tags counts as installed too."""
    loaded = parse_ps(ps)
    installed = parse_tags(tags) | frozenset(m.name for m in loaded)
    return HostPoll(parse_version(version), installed, loaded)
