"""Model names as Ollama reads them (types/model/name.go in Ollama 0.23), pure.

A name is `[host/][namespace/]model[:tag][@digest]`; the defaults are registry.ollama.ai, library and latest,
and names compare case-insensitively. So "SmolLM2", "smollm2:latest" and
"registry.ollama.ai/library/smollm2:latest" are one model: `normalize_name` gives them one key, and every place
that matches names (models show/rm/unload, bench's preflight) uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
_MAX_LEN = {"host": 350, "namespace": 80, "model": 80, "tag": 80}


@dataclass(frozen=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str

    def short(self) -> str:
        """The shortest spelling Ollama lists: "smollm2:135m", "me/model:tag", "host/ns/model:tag"."""
        if self.host == DEFAULT_HOST:
            prefix = "" if self.namespace == DEFAULT_NAMESPACE else f"{self.namespace}/"
        else:
            prefix = f"{self.host}/{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"


def _split(text: str) -> tuple[str | None, str | None, str, str | None]:
    """host, namespace, model, tag as written (None where absent, "" where written empty), as Ollama's
    ParseNameBare splits them."""
    text = text.split("@", 1)[0]
    tag = None
    if text.rfind(":") > text.rfind("/"):
        text, tag = text.rsplit(":", 1)
    parts = text.rsplit("/", 2)
    host = parts[-3] if len(parts) >= 3 else None
    if host is not None and "://" in host:
        host = host.split("://", 1)[1]
    return host, parts[-2] if len(parts) >= 2 else None, parts[-1], tag


def _check_part(kind: str, part: str) -> str | None:
    if not 1 <= len(part) <= _MAX_LEN[kind]:
        return f"its {kind} must be 1 to {_MAX_LEN[kind]} characters"
    if not (part[0].isascii() and (part[0].isalnum() or part[0] == "_")):
        return f"its {kind} must start with a letter, a digit or '_'"
    for ch in part[1:]:
        if ch in "_-" or (ch.isascii() and ch.isalnum()):
            continue
        if ch == "." and kind != "namespace":
            continue
        if ch == ":" and kind == "host":
            continue
        return f"its {kind} may not contain {ch!r}"
    return None


def parse_model_name(text: str) -> ModelName:
    """The parts of a model name with Ollama's defaults filled in; ValueError says what is wrong otherwise."""
    if not text.strip():
        raise ValueError("it is empty")
    if text != text.strip():
        raise ValueError("it has leading or trailing whitespace")
    host, namespace, model, tag = _split(text)
    name = ModelName(DEFAULT_HOST if host is None else host, DEFAULT_NAMESPACE if namespace is None else namespace,
                     model, DEFAULT_TAG if tag is None else tag)
    for kind in ("host", "namespace", "model", "tag"):
        problem = _check_part(kind, getattr(name, kind))
        if problem:
            raise ValueError(problem)
    return name


def normalize_name(text: str) -> str:
    """One key per model: the short spelling, lower-case ("SmolLM2" → "smollm2:latest"). A name Ollama would
    refuse is only lower-cased, so it matches nothing installed."""
    try:
        return parse_model_name(text).short().lower()
    except ValueError:
        return text.strip().lower()
