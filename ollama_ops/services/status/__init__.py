"""`sollama status`: is the daemon up, what runs in it, how much it uses, does it still generate, and the gateway.

`status` returns one `StatusReport` (report.py; JSON schema "sollama.status/1", docs/status-schema.md). The parts:
probe.py asks the server, local.py reads this machine (process, log, disk, memory), gateway.py the gateway's section.
"""

from __future__ import annotations

from typing import Any

from ollama_ops.services.status.probe import collect_status, deep_probe, loaded_models, wait_until_reachable
from ollama_ops.services.status.report import SCHEMA, StatusReport

__all__ = ["SCHEMA", "StatusReport", "collect_status", "deep_probe", "loaded_models", "status",
           "wait_until_reachable"]


def status(settings: Any, *, deep: bool = False, model: str | None = None, deep_timeout: float = 30.0,
           wait: float | None = None, api_key: str | None = None) -> StatusReport:
    """The command's one entry point: optionally wait until reachable, then collect the report (with the
    gateway's section when one is configured or answers on gateway.listen)."""
    from ollama_ops.services.status.gateway import gateway_status

    if wait is not None:
        wait_until_reachable(settings, wait)
    report = collect_status(settings, deep=deep, model=model, deep_timeout=deep_timeout, api_key=api_key)
    report.gateway = gateway_status(settings, api_key=api_key)
    return report
