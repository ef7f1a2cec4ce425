"""What a bench run needs around its hot loop: the aiohttp session, a preflight check, the transport for the
measured requests, and machine facts."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ollama_ops.client.protocol import unreachable
from ollama_ops.client.transport import Transport
from ollama_ops.client.wire import WireClient
from ollama_ops.client.wire_aio import AiohttpTransport
from ollama_ops.core.names import normalize_name
from ollama_ops.errors import ModelNotFound, RequestTimeout
from ollama_ops.services.models import closest_names


@contextlib.asynccontextmanager
async def open_session(config: Any) -> AsyncIterator[aiohttp.ClientSession]:
    """One keep-alive session to the server; `config.timeout` bounds each whole request."""
    connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=False, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=config.timeout, sock_connect=config.connect_timeout)
    async with aiohttp.ClientSession(config.base_url, connector=connector, timeout=timeout,
                                     auto_decompress=False, skip_auto_headers=("Accept-Encoding",),
                                     headers=getattr(config, "headers", None) or None) as session:
        yield session


async def preflight(session: aiohttp.ClientSession, model: str, base: str) -> dict[str, Any]:
    """The server's version and the model's digest; ServerUnreachable / ModelNotFound before any load is sent."""
    try:
        async with session.get("/api/version", timeout=aiohttp.ClientTimeout(total=10)) as resp:
            version = (await resp.json(content_type=None) or {}).get("version") if resp.status == 200 else None
        async with session.get("/api/tags", timeout=aiohttp.ClientTimeout(total=10)) as resp:
            tags = (await resp.json(content_type=None) or {}).get("models") or [] if resp.status == 200 else None
    except aiohttp.ClientConnectorError as exc:
        raise unreachable(base, exc) from None
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        raise RequestTimeout(f"Ollama at {base} did not answer /api/version and /api/tags: "
                             f"{type(exc).__name__}") from None
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


def open_transport(config: Any, session: aiohttp.ClientSession) -> Transport:
    """The raw wire client for a plain http:// server (kernel-clocked chunks); the aiohttp path over `session`
    for anything else (https://)."""
    from ollama_ops.core.bench.apis import is_openai

    sse = is_openai(config.api)
    client = WireClient.for_url(config.base_url, config.timeout, config.connect_timeout, config.headers, sse)
    # the session already sends config.headers with every request
    return client if client is not None else AiohttpTransport(session, sse=sse)


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
