"""`ensure_running()`: make sure the daemon a library client will talk to answers, starting it locally if not.

It starts nothing itself: it calls `services.lifecycle.start_server`, the code behind `sollama start`, so it
takes the same lock, writes the same pid file and waits for readiness the same way (five processes calling it
at once give one daemon). It never starts anything for a remote address or a gateway.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ollama_ops.client.discovery import Discovery, discover
from ollama_ops.errors import OllamaError, RequestTimeout, ServerUnreachable


@dataclass
class EnsureResult:
    """"running" (it already answered), "started" (this call started it) or "already-running" (another caller
    started it while this one waited on the lock)."""

    status: str
    base_url: str
    source: str
    pid: int | None = None
    version: str | None = None
    waited_s: float | None = None


def _answers(discovery: Discovery, timeout: float) -> bool:
    from ollama_ops.client.resilience import CircuitBreaker
    from ollama_ops.client.sync import Client

    with Client(discovery.base_url, api_key=discovery.api_key, connect_timeout=min(timeout, 1.0),
                read_timeout=timeout, retries=0, busy_retries=0,
                breaker=CircuitBreaker(failures=1 << 30)) as client:
        with contextlib.suppress(ServerUnreachable, RequestTimeout, OllamaError):
            client.version()
            return True
    return False


def ensure_running(timeout: float | None = None, *, host: str | None = None, api_key: str | None = None,
                   config: str | None = None) -> EnsureResult:
    """No-op when the discovered address answers; else start the local daemon like `sollama start` and wait
    until it is ready (up to `timeout` seconds, default `server.start_timeout`).

    Raises ServerUnreachable for a gateway or a remote address that does not answer, ProcessError when the port
    is held by something else or the daemon dies at start, RequestTimeout when it is not ready in time."""
    discovery = discover(host, api_key=api_key)
    if _answers(discovery, 2.0):
        return EnsureResult("running", discovery.base_url, discovery.source)
    if discovery.gateway:
        raise ServerUnreachable(f"the sollama gateway at {discovery.base_url} ({discovery.source}) does not "
                                f"answer", hint="ensure_running never starts a gateway; start it where it runs")
    from ollama_ops.core.hosts import parse_host

    address = parse_host(discovery.base_url)
    if not address.is_local:
        raise ServerUnreachable(f"Ollama at {discovery.base_url} ({discovery.source}) does not answer, and it is "
                                f"not an address of this machine", hint="ensure_running starts only a local daemon")
    from ollama_ops.config import load_settings
    from ollama_ops.services.launch import plan_launch
    from ollama_ops.services.lifecycle import start_server

    settings = load_settings(config, flags={"server.host": discovery.base_url})
    result = start_server(settings, plan_launch(settings), timeout=timeout)
    status = "started" if result.status == "started" else "already-running"
    return EnsureResult(status, result.address, discovery.source, pid=result.pid, version=result.version,
                        waited_s=result.waited_s)
