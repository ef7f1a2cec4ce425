"""What a bench run needs around its hot loop: the library's streaming session (`client.stream`), a preflight
check, the transport for the measured requests, and machine facts."""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import AsyncIterator
from typing import Any

from ollama_ops.client.stream import StreamSession
from ollama_ops.client.transport import StreamTransport, Transport
from ollama_ops.client.wire import WireClient
from ollama_ops.core.names import normalize_name
from ollama_ops.errors import LocalLimit, ModelNotFound, RequestTimeout, ServerUnreachable, SollamaError
from ollama_ops.services.models import closest_names


@contextlib.asynccontextmanager
async def open_session(config: Any) -> AsyncIterator[StreamSession]:
    """One keep-alive session to the server, sending `config.headers` with every request."""
    session = StreamSession(config.base_url, connect_timeout=config.connect_timeout, read_timeout=None,
                            headers=getattr(config, "headers", None) or None)
    try:
        yield session
    finally:
        await session.close()


async def _get_json(session: StreamSession, path: str) -> Any:
    resp = await session.open("GET", path, total=10)
    try:
        raw = await resp.read()
    finally:
        resp.close()
    return (json.loads(raw) or {}) if resp.status == 200 else None


async def preflight(session: StreamSession, model: str, base: str) -> dict[str, Any]:
    """The server's version and the model's digest; ServerUnreachable / ModelNotFound before any load is sent."""
    try:
        version = ((await _get_json(session, "/api/version")) or {}).get("version")
        tags_doc = await _get_json(session, "/api/tags")
        tags = (tags_doc or {}).get("models") or [] if tags_doc is not None else None
    except (ServerUnreachable, LocalLimit):
        raise
    except (SollamaError, ValueError, AttributeError) as exc:
        cause = exc.__cause__ or exc
        raise RequestTimeout(f"Ollama at {base} did not answer /api/version and /api/tags: "
                             f"{type(cause).__name__}") from None
    digest = None
    if tags is not None:
        names = {}
        for entry in tags:
            name = str(entry.get("name") or entry.get("model") or "")
            names[normalize_name(name)] = entry.get("digest")
        if normalize_name(model) not in names:
            raise ModelNotFound(model, installed=closest_names(model, sorted(names)))
        digest = names[normalize_name(model)]
    return {"version": version, "digest": digest}


def open_transport(config: Any, session: StreamSession) -> Transport:
    """The raw wire client for a plain http:// server (kernel-clocked chunks); the library's streaming layer over
    `session` for anything else (https://)."""
    from ollama_ops.core.bench.apis import is_openai

    sse = is_openai(config.api)
    client = WireClient.for_url(config.base_url, config.timeout, config.connect_timeout, config.headers, sse)
    # the session already sends config.headers with every request
    return client if client is not None else StreamTransport(session, sse=sse, timeout=config.timeout)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def system_facts() -> dict[str, Any]:
    """CPU model and cores, RAM, GPUs of the machine running the bench (stored with each run)."""
    facts: dict[str, Any] = {"cpu": _cpu_model(), "cores": os.cpu_count(), "os": platform.platform(terse=True),
                             "python": platform.python_version()}
    try:
        from ollama_ops.edges import system

        facts["ram"] = system.memory_facts().total
        facts["gpu"] = [{"name": g.name, "total": g.total} for g in system.gpu_facts(timeout=3.0)]
    except Exception:  # noqa: BLE001 - facts are a nicety, never a reason to fail a bench
        facts.setdefault("ram", None)
        facts.setdefault("gpu", [])
    return facts
