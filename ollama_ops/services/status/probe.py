"""Asking the daemon: version, loaded and installed models, the one-token deep probe, waiting until it answers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ollama_ops.core import health
from ollama_ops.core.hosts import parse_host
from ollama_ops.errors import SollamaError
from ollama_ops.services.status.local import begin_local, local_facts
from ollama_ops.services.status.report import (
    FOREVER_S,
    SCHEMA,
    DeepProbe,
    InstalledModels,
    LoadedModel,
    StatusReport,
    WatchRestart,
)


def _parse_time(text: str) -> datetime | None:
    """Go's RFC 3339 with nanoseconds → datetime (Python takes at most microseconds)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def loaded_models(ps: list[dict[str, Any]], now: datetime) -> list[LoadedModel]:
    out = []
    for m in ps:
        size, vram = int(m.get("size") or 0), int(m.get("size_vram") or 0)
        expires = str(m.get("expires_at") or "") or None
        when = _parse_time(expires) if expires else None
        left = (when - now).total_seconds() if when else None
        ctx = m.get("context_length")
        out.append(LoadedModel(name=str(m.get("name") or m.get("model") or ""), size=size, size_vram=vram,
                               vram_share=round(vram / size, 3) if size else 0.0,
                               context_length=int(ctx) if isinstance(ctx, int) else None, expires_at=expires,
                               expires_in_s=None if left is None or left > FOREVER_S else max(0.0, round(left, 1))))
    return out


def deep_probe(client: Any, model: str | None, timeout: float) -> DeepProbe:
    """A one-token generation (num_predict 1) that must finish within `timeout` seconds."""
    from ollama_ops.client.protocol import GenerateRequest
    from ollama_ops.core.ndjson import FinalChunk

    if model is None:
        return DeepProbe(model=None, ok=None, latency_s=None, timeout_s=timeout, error="no model installed to probe")
    request = GenerateRequest(model=model, prompt="Reply with OK.", options={"num_predict": 1})
    start = time.monotonic()
    try:
        for event in client.stream(request, read_timeout=timeout):
            if time.monotonic() - start > timeout:
                raise SollamaError(f"no answer within {timeout:g}s")
            if isinstance(event, FinalChunk):
                break
    except SollamaError as exc:
        return DeepProbe(model=model, ok=False, latency_s=None, timeout_s=timeout,
                         error=f"one-token generation on {model} failed: {exc.one_line()}")
    return DeepProbe(model=model, ok=True, latency_s=round(time.monotonic() - start, 4), timeout_s=timeout)


def watch_restarts(base_url: str, limit: int = 3) -> list[WatchRestart]:
    from ollama_ops.edges.events import recent_restarts

    return [WatchRestart(e.at, e.kind, e.reason, e.pid) for e in recent_restarts(base_url, limit)]


def collect_status(settings: Any, *, deep: bool = False, model: str | None = None, deep_timeout: float = 30.0,
                   sample_s: float = 0.1, api_key: str | None = None) -> StatusReport:
    """Probe the configured server once. Never raises for an unreachable server: the report says so."""
    address = parse_host(settings.server.host)
    # Local facts first: the CPU window on the daemon then covers the client's import and the requests.
    local = begin_local(address) if address.is_local else None
    from ollama_ops.client.sync import Client

    now = datetime.now(UTC)
    report = StatusReport(schema=SCHEMA, state="unreachable", healthy=False, reachable=False,
                          address=address.base_url, local=address.is_local, checked_at=now.isoformat())
    report.restarts = watch_restarts(address.base_url)
    quick = min(settings.client.read_timeout, 10.0)
    # One attempt: status reports how the server is now (`--wait` is the way to wait for it), and a CI loop
    # that polls it should not sit through retry back-off on every refused connection.
    with Client.from_settings(settings, read_timeout=quick, retries=0, api_key=api_key) as client:
        try:
            start = time.perf_counter()
            report.version = client.version()
            report.latency_s = round(time.perf_counter() - start, 4)
            report.reachable = True
            ps, tags = client.ps(), client.tags()
        except SollamaError as exc:
            report.error = exc.message
            if not report.reachable:
                local_facts(report, local, settings, sample_s)
                return report
            ps, tags = [], []
        report.loaded = loaded_models(ps, now)
        if report.error is None:
            report.installed = InstalledModels(count=len(tags),
                                               total_size=sum(int(t.get("size") or 0) for t in tags))
        local_facts(report, local, settings, sample_s)
        if deep:
            target = model or next((m.name for m in report.loaded), None) or next(
                (str(t.get("name")) for t in tags), None)
            report.deep = deep_probe(client, target, deep_timeout)
    probe_ok = report.deep.ok if report.deep else None
    if report.error is not None:  # /api/version answered, but /api/ps or /api/tags did not
        probe_ok = False
    report.state = health.status_state(report.reachable, probe_ok)
    report.healthy = report.state == "healthy"
    if report.deep is not None and report.deep.ok is False:
        report.error = report.deep.error
    return report


def wait_until_reachable(settings: Any, timeout: float, *, interval: float = 0.25,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> bool:
    """Poll GET / until it answers or `timeout` seconds pass (each poll bounded by the time left)."""
    from ollama_ops.client.resilience import CircuitBreaker
    from ollama_ops.client.sync import Client

    address = parse_host(settings.server.host)
    deadline = clock() + max(0.0, timeout)
    while True:
        left = deadline - clock()
        # A fresh client per poll: no retries, and no circuit breaker holding a server that just came up.
        with Client(address.base_url, connect_timeout=max(0.05, min(left, settings.client.connect_timeout)),
                    read_timeout=max(0.05, min(left, 5.0)), retries=0, busy_retries=0,
                    breaker=CircuitBreaker()) as client:
            try:
                client.ping()
                return True
            except SollamaError:
                pass
        left = deadline - clock()
        if left <= 0:
            return False
        sleep(min(interval, left))  # the last poll happens at the deadline, not up to an interval before it
