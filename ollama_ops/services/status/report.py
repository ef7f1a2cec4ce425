"""The data model of `sollama status`: one `StatusReport` and its parts.

Its JSON form is a stable, documented schema (`docs/status-schema.md`, schema id "sollama.status/1"): fields are only
ever added, never renamed or removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "sollama.status/1"
LOG_TAIL_BYTES = 256 * 1024
FOREVER_S = 10 * 365 * 86400.0  # expires_at that far ahead means keep_alive < 0 (never unloads)


@dataclass
class ProcessStatus:
    """The local daemon process (`ollama serve`) and its runner children together."""

    pid: int
    name: str
    uptime_s: float
    rss: int  # bytes, server + runners
    cpu_percent: float  # server + runners; 100 = one core
    children: int  # runner processes
    child_rss: int
    source: str  # "pidfile" (verified sollama record) or "listener" (whoever holds the port)
    started_by: str  # the pid file's started_by, else "not started by sollama"
    started_at: str | None = None
    log: str | None = None
    holds_port: bool = False  # the process (or one of its children) listens on the address's port


@dataclass
class LoadedModel:
    name: str
    size: int  # bytes, /api/ps size
    size_vram: int
    vram_share: float  # size_vram / size, 0..1
    context_length: int | None
    expires_at: str | None
    expires_in_s: float | None  # None: never (keep_alive < 0) or unknown


@dataclass
class InstalledModels:
    count: int
    total_size: int


@dataclass
class DiskStatus:
    path: str
    free: int
    total: int


@dataclass
class MemoryStatus:
    budget: int  # RAM − reserve + VRAM (services.memory.budget)
    used: int  # sum of /api/ps size of the loaded models
    total_ram: int
    available_ram: int


@dataclass
class DeepProbe:
    model: str | None
    ok: bool | None  # None: nothing to probe
    latency_s: float | None
    timeout_s: float
    error: str | None = None


@dataclass
class LogStatus:
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the last error lines, oldest first


@dataclass
class WatchRestart:
    """A restart (or give-up) the watchdog (`sollama watch`) recorded for this address."""

    at: str
    kind: str  # "restarted" | "restart-failed" | "give-up"
    reason: str
    pid: int | None = None


@dataclass
class StatusReport:
    """The state of one Ollama daemon (JSON schema "sollama.status/1", see docs/status-schema.md).

    state: "healthy" | "degraded" (answers, but --deep failed) | "unreachable"; healthy/reachable mirror it.
    address: the base URL probed; latency_s: time of GET /api/version; version: its answer.
    local: the address is this machine (then process, disk and memory are filled when known).
    process: pid, uptime, RSS and CPU of the server and its runners; who started it.
    loaded: /api/ps; installed: /api/tags count and bytes; disk: free space of the models dir.
    memory: budget vs used; deep: the one-token probe (only with --deep); log: the last error lines.
    error: why it is unreachable or degraded (None when healthy); checked_at: ISO 8601 UTC.
    """

    schema: str
    state: str
    healthy: bool
    reachable: bool
    address: str
    local: bool
    checked_at: str
    latency_s: float | None = None
    version: str | None = None
    error: str | None = None
    process: ProcessStatus | None = None
    loaded: list[LoadedModel] = field(default_factory=list)
    installed: InstalledModels | None = None
    disk: DiskStatus | None = None
    memory: MemoryStatus | None = None
    deep: DeepProbe | None = None
    log: LogStatus = field(default_factory=LogStatus)
    restarts: list[WatchRestart] = field(default_factory=list)  # the watchdog's last restarts, newest first
    gateway: Any = None  # services.status.gateway.GatewayStatus: a configured or running `sollama serve`
