"""The gateway section of `sollama status`: is a `sollama serve` configured or running, and how busy is it.

Read from the gateway itself: `/healthz` (it lives, uptime, draining) and `/queue` (slots, in flight, depth; the
admin view with an admin key or when auth is off, else the caller's own requests), plus the local keys file and
the managed gateway's pid record (`sollama start --gateway`: pid, since when, its log; verified before trusted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ollama_ops.errors import SollamaError


@dataclass
class GatewayStatus:
    """`status --json` → `gateway` (docs/status-schema.md)."""

    address: str  # the gateway's base URL (gateway.listen)
    upstream: str  # the Ollama it forwards to
    running: bool  # GET /healthz answered
    uptime_s: float | None = None
    draining: bool | None = None
    slots: int | None = None
    in_flight: int | None = None
    queue_depth: int | None = None
    oldest_wait_s: float | None = None  # admin view only
    view: str | None = None  # "admin" (every key's requests) | "key" (only the caller's) | None (/queue refused)
    keys: int = 0  # usable keys in the local keys file
    keys_total: int = 0  # of which revoked or expired: keys_total - keys
    error: str | None = None
    managed: bool = False  # sollama started it (`start --gateway`) and its pid record verifies
    pid: int | None = None  # the managed gateway's pid
    started_at: str | None = None
    log: str | None = None  # the managed gateway's process log


def _configured(settings: Any) -> bool:
    """The `gateway:` section was set (file, env or flag), not only defaulted."""
    return any(k.startswith("gateway.") and not v.startswith("default") for k, v in settings.sources.items())


def _key_counts() -> tuple[int, int]:
    from ollama_ops.gateway.keystore import KeyRing, keys_path

    try:
        ring = KeyRing(keys_path())
    except (SollamaError, OSError):
        return 0, 0
    return ring.usable_count(), len(ring)


def _managed() -> tuple[Any, float | None]:
    """(record, process uptime in seconds) of the gateway sollama started, when its record verifies."""
    import time

    from ollama_ops.services.gateway_lifecycle import gateway_record

    record, proc = gateway_record()
    if record is None or proc is None:
        return None, None
    try:
        return record, max(0.0, time.time() - proc.create_time())
    except Exception:  # gone since verified
        return None, None


def gateway_status(settings: Any, *, api_key: str | None = None, timeout: float = 1.0,
                   always: bool = False) -> GatewayStatus | None:
    """The gateway's state; None when none is configured, none is managed and nothing answers on its address
    (unless `always`)."""
    import httpx

    from ollama_ops.gateway.settings import from_settings

    try:
        config = from_settings(settings)
    except SollamaError:
        return None
    usable, total = _key_counts()
    record, process_uptime = _managed()
    address = record.base_url if record is not None and record.base_url else config.listen_url
    report = GatewayStatus(address=address, upstream=config.upstream, running=False, keys=usable,
                           keys_total=total)
    if record is not None:
        report.managed, report.pid = True, record.pid
        report.started_at, report.log = record.started_at or None, record.log or None
        report.uptime_s = round(process_uptime, 1) if process_uptime is not None else None
        always = True
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=address, timeout=timeout, headers=headers, trust_env=False) as http:
        try:
            health = http.get("/healthz")
            body = health.json() if health.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            body, report.error = None, f"{address} does not answer ({type(exc).__name__})"
        if not isinstance(body, dict) or "draining" not in body:
            if report.error is None:
                report.error = f"{address} answers, but not as a sollama gateway"
            return report if (always or _configured(settings)) else None
        report.running, report.error = True, None
        report.uptime_s, report.draining = body.get("uptime_s"), bool(body.get("draining"))
        try:
            queue = http.get("/queue")
            doc = queue.json() if queue.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            doc = None
    if not isinstance(doc, dict):
        report.error = "/queue refused: pass an API key (--api-key or SOLLAMA_API_KEY)"
        return report
    report.slots, report.in_flight = doc.get("slots"), doc.get("in_flight")
    report.queue_depth = doc.get("depth")
    if "by_key" in doc:
        report.view, report.oldest_wait_s = "admin", doc.get("oldest_wait_s")
    else:
        report.view = "key"
    return report
