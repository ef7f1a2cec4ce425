"""Installed models: list, show, import a local GGUF, remove, unload. Uses only the HTTP API, so it works
against a remote server too."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ollama_ops.core.names import normalize_name, parse_model_name
from ollama_ops.errors import ModelNotFound, SollamaError, UsageError

GGUF_MAGIC = b"GGUF"


class Progress(Protocol):
    """What a long step reports to: the CLI passes a Rich progress bar, tests pass nothing."""

    def start(self, label: str, total: int | None) -> None: ...
    def advance(self, amount: int) -> None: ...
    def status(self, text: str) -> None: ...


class _Silent:
    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def status(self, text: str) -> None:
        pass


@dataclass
class ModelSummary:
    name: str
    size: int
    family: str
    parameter_size: str
    quantization: str
    modified: str  # ISO 8601, as the server reports it
    modified_ago: str  # "3 days ago"
    digest: str


@dataclass
class ModelList:
    """What `sollama models list` reports."""

    models: list[ModelSummary]


@dataclass
class ModelDetails:
    name: str
    family: str
    architecture: str
    parameter_size: str
    quantization: str
    format: str
    context_length: int | None
    block_count: int | None
    head_count: int | None
    head_count_kv: int | None
    embedding_length: int | None
    parameters: dict[str, str | list[str]]  # a parameter given more than once (stop) is a list
    capabilities: list[str]
    template: str
    system: str
    model_info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportResult:
    name: str
    file: str
    digest: str
    size: int
    uploaded: bool  # False when the server already had the blob
    statuses: list[str]


@dataclass
class RemoveResult:
    name: str
    removed: bool


@dataclass
class UnloadResult:
    unloaded: list[str]
    still_loaded: list[str] = field(default_factory=list)  # asked to unload, but still in /api/ps after the wait


def summarize(entry: dict[str, Any], now: datetime | None = None) -> ModelSummary:
    """A ModelSummary from one `/api/tags` entry."""
    details = entry.get("details") or {}
    modified = str(entry.get("modified_at") or "")
    size = entry.get("size")
    return ModelSummary(name=str(entry.get("name") or entry.get("model") or ""),
                        size=int(size) if isinstance(size, (int, float)) else 0,
                        family=str(details.get("family") or ""),
                        parameter_size=str(details.get("parameter_size") or ""),
                        quantization=str(details.get("quantization_level") or ""),
                        modified=modified, modified_ago=modified_age(modified, now),
                        digest=str(entry.get("digest") or ""))


def list_models(client: Any, now: datetime | None = None) -> list[ModelSummary]:
    """Installed models, newest first."""
    return sorted((summarize(m, now) for m in client.tags()), key=lambda m: m.modified, reverse=True)


def arch_value(model_info: dict[str, Any], key: str) -> Any:
    """`<architecture>.<key>` from `model_info` (e.g. llama.block_count)."""
    arch = model_info.get("general.architecture", "")
    return model_info.get(f"{arch}.{key}")


def _parse_parameters(text: str) -> dict[str, str | list[str]]:
    """Ollama's `parameters` text (`stop "<|im_end|>"` per line) as a mapping; repeated keys become lists."""
    params: dict[str, str | list[str]] = {}
    for line in (text or "").splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if key in params:
                before = params[key]
                params[key] = (before if isinstance(before, list) else [before]) + [value]
            else:
                params[key] = value
    return params


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def details_from_show(name: str, shown: dict[str, Any]) -> ModelDetails:
    """A ModelDetails from an `/api/show` answer."""
    info = dict(shown.get("model_info") or {})
    details = shown.get("details") or {}
    return ModelDetails(
        name=name, family=str(details.get("family") or ""), architecture=str(info.get("general.architecture") or ""),
        parameter_size=str(details.get("parameter_size") or ""),
        quantization=str(details.get("quantization_level") or ""), format=str(details.get("format") or ""),
        context_length=_int_or_none(arch_value(info, "context_length")),
        block_count=_int_or_none(arch_value(info, "block_count")),
        head_count=_int_or_none(arch_value(info, "attention.head_count")),
        head_count_kv=_int_or_none(arch_value(info, "attention.head_count_kv")),
        embedding_length=_int_or_none(arch_value(info, "embedding_length")),
        parameters=_parse_parameters(str(shown.get("parameters") or "")),
        capabilities=list(shown.get("capabilities") or []), template=str(shown.get("template") or ""),
        system=str(shown.get("system") or ""),
        model_info={k: v for k, v in info.items() if v is not None and not isinstance(v, list)},
    )


def installed_names(client: Any) -> list[str]:
    return [m.name for m in list_models(client)]


def closest_names(name: str, installed: list[str], limit: int = 5) -> list[str]:
    """Installed names ordered by similarity to `name` (closest first)."""
    import difflib

    base = name.split(":")[0]
    return sorted(installed, key=lambda n: (-difflib.SequenceMatcher(None, base, n.split(":")[0]).ratio(), n))[:limit]


def not_found(client: Any, exc: ModelNotFound) -> ModelNotFound:
    """Re-raise a 404 with the installed models listed, closest first."""
    try:
        names = closest_names(exc.model, installed_names(client))
    except SollamaError:
        return exc
    return ModelNotFound(exc.model, installed=names, server_message=exc.server_message)


def show_model(client: Any, name: str) -> ModelDetails:
    try:
        return details_from_show(name, client.show(name))
    except ModelNotFound as exc:
        raise not_found(client, exc) from None


def sha256_file(path: Path, progress: Progress | None = None, chunk: int = 1 << 20) -> str:
    progress = progress or _Silent()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
            progress.advance(len(block))
    return "sha256:" + digest.hexdigest()


def check_gguf(path: Path) -> int:
    """Raise a clear error unless `path` is a readable GGUF file; returns its size."""
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    if not path.is_file():
        raise UsageError(f"not a file: {path}")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise SollamaError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic != GGUF_MAGIC:
        raise UsageError(f"{path} is not a GGUF file (it starts with {magic!r}, expected b'GGUF')")
    return path.stat().st_size


def import_gguf(client: Any, path: Path, name: str, *, template: str | None = None, system: str | None = None,
                parameters: dict[str, Any] | None = None, force: bool = False,
                progress: Progress | None = None, expected_digest: str | None = None) -> ImportResult:
    """Hash, upload (unless the server has the blob) and create model `name` from a local GGUF file."""
    progress = progress or _Silent()
    check_model_name(name)  # before the file is read: hashing a big GGUF for a name the server refuses wastes minutes
    size = check_gguf(path)
    if not force and name_taken(client, name):
        raise SollamaError(f"a model named '{name}' already exists", hint="pick another --name or pass --force")
    progress.start(f"sha256 {path.name}", size)
    digest = sha256_file(path, progress)
    if expected_digest and expected_digest.removeprefix("sha256:") != digest.removeprefix("sha256:"):
        raise SollamaError(f"digest mismatch for {path}: expected {expected_digest}, got {digest}")
    uploaded = False
    if not client.blob_exists(digest):
        progress.start(f"upload {path.name}", size)
        client.upload_blob(digest, path, progress.advance)
        uploaded = True
    body: dict[str, Any] = {"model": name, "files": {path.name: digest}}
    if template is not None:
        body["template"] = template
    if system is not None:
        body["system"] = system
    if parameters:
        body["parameters"] = parameters
    statuses = []
    progress.start(f"create {name}", None)
    for event in client.create(body):
        status = str(event.get("status") or "")
        if status:
            statuses.append(status)
            progress.status(status)
    if not statuses or statuses[-1] != "success":
        raise SollamaError(f"creating '{name}' did not finish (last status: {statuses[-1] if statuses else 'none'})")
    return ImportResult(name=name, file=str(path), digest=digest, size=size, uploaded=uploaded, statuses=statuses)


def check_model_name(name: str) -> None:
    """UsageError unless Ollama would accept `name` as a model name (core.names has its rules)."""
    try:
        parse_model_name(name)
    except ValueError as exc:
        raise UsageError(f"invalid model name {name!r:.100}: {exc}",
                         hint="e.g. mymodel, mymodel:7b or me/mymodel:q4") from None


def installed_as(client: Any, name: str) -> str | None:
    """The installed model that `name` means, spelled as the server lists it (names match as Ollama matches
    them: default tag, namespace and host, any case), or None."""
    key = normalize_name(name)
    return next((n for n in installed_names(client) if normalize_name(n) == key), None)


def name_taken(client: Any, name: str) -> bool:
    return installed_as(client, name) is not None


def remove_model(client: Any, name: str, *, confirm: Callable[[str], bool] | None = None) -> RemoveResult:
    """Delete model `name`, matched against the installed names as `models show` matches it. With `confirm`,
    the model must exist and `confirm(name)` must say yes first."""
    check_model_name(name)
    target = installed_as(client, name)
    if confirm is not None:
        if target is None:
            raise not_found(client, ModelNotFound(name))
        if not confirm(target):
            return RemoveResult(name=target, removed=False)
    try:
        client.delete(target or name)
    except ModelNotFound as exc:
        raise not_found(client, exc) from None
    return RemoveResult(name=target or name, removed=True)


def unload_models(client: Any, name: str | None = None, *, all_models: bool = False, wait: float = 10.0,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> UnloadResult:
    """Unload one model (keep_alive 0) or every loaded one, then wait up to `wait` seconds until `/api/ps`
    no longer lists them (the server answers at once and frees the memory a moment later)."""
    if all_models:
        targets = [str(m.get("name") or m.get("model")) for m in client.ps()]
    elif name:
        targets = [name]
    else:
        raise UsageError("name a model to unload, or pass --all")
    for target in targets:
        try:
            client.unload(target)
        except ModelNotFound as exc:
            raise not_found(client, exc) from None
    wanted = {normalize_name(t) for t in targets}
    deadline = clock() + wait
    while True:
        loaded = [str(m.get("name") or m.get("model")) for m in client.ps()]
        still = [n for n in loaded if normalize_name(n) in wanted]
        if not still or clock() >= deadline:
            break
        sleep(0.1)
    return UnloadResult(unloaded=[t for t in targets if normalize_name(t) not in {normalize_name(n) for n in still}],
                        still_loaded=still)


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """`k=v` pairs into model parameters, typed by Ollama's option schema (the same as request options):
    unknown names and wrong types are a UsageError; `stop` may repeat and is always a list."""
    from ollama_ops.core.options import parse_options

    return parse_options(pairs)


def modified_age(modified: str, now: datetime | None = None) -> str:
    """'2025-01-02T03:04:05.123+00:00' → '3 days ago' (best effort)."""
    try:
        when = datetime.fromisoformat(modified.replace("Z", "+00:00"))
    except ValueError:
        return modified
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    secs = max(0, (now - when).total_seconds())
    for unit, span in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= span:
            n = int(secs // span)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


