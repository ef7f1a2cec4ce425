"""`sollama status`: is the daemon up, what runs in it, how much it uses, does it still generate.

`collect_status` returns one `StatusReport`; its JSON form is a stable, documented schema
(`docs/status-schema.md`, schema id "sollama.status/1"): fields are only ever added, never renamed or removed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ollama_ops.core import health
from ollama_ops.core.hosts import HostAddress, parse_host
from ollama_ops.errors import SollamaError

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
    gateway: Any = None  # services.gateway_status.GatewayStatus: a configured or running `sollama serve`


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


def _pid_record(address: HostAddress) -> tuple[Any, Any]:
    """(record, verified psutil process) of the pid file when it is about this address (sollama manages the
    daemon there), else (None, None)."""
    try:
        from ollama_ops.edges import process
    except ModuleNotFoundError:
        return None, None
    record = process.read_pidfile()
    if record is None or not record.host or parse_host(record.host).port != address.port:
        return None, None
    return record, process.verify(record)


@dataclass
class _LocalProbe:
    """What status learns about the local daemon before it asks the server anything: the pid record when it is
    about this address, the process (verified record, else whoever listens), and an open CPU window on it, so the
    CPU sample runs while the HTTP requests do instead of after them."""

    record: Any = None
    pid: int | None = None
    source: str = ""
    holds_port: bool = False
    sample: Any = None


def _begin_local(address: HostAddress) -> _LocalProbe:
    from ollama_ops.edges import system

    record, proc = _pid_record(address)
    probe = _LocalProbe(record=record)
    if proc is not None:
        probe.pid, probe.source = proc.pid, "pidfile"
        probe.holds_port = system.tree_listens_on(proc.pid, address.port)
    else:
        listener = system.listener_on(address.port)
        if listener is None or listener.pid is None:
            return probe
        probe.pid, probe.source, probe.holds_port = listener.pid, "listener", True
    probe.sample = system.begin_tree_sample(probe.pid)
    return probe


def _process_status(probe: _LocalProbe, sample_s: float) -> ProcessStatus | None:
    from ollama_ops.edges import system

    stats = system.finish_tree_sample(probe.sample, sample_s)
    if stats is None or probe.pid is None:
        return None
    record = probe.record
    mine = probe.source == "pidfile"
    return ProcessStatus(
        pid=probe.pid, name=stats.name, uptime_s=round(stats.uptime_s, 1), rss=stats.rss,
        cpu_percent=stats.cpu_percent, children=stats.children, child_rss=stats.child_rss, source=probe.source,
        started_by=(record.started_by or "sollama") if mine else "not started by sollama",
        started_at=(record.started_at or None) if mine else None, log=(record.log or None) if mine else None,
        holds_port=probe.holds_port,
    )


def _models_dir(pid: int | None, settings: Any) -> Path:
    """The daemon's own OLLAMA_MODELS when its environment is readable, else the configured one."""
    import os

    from ollama_ops.edges import system

    env = system.process_environ(pid) if pid else {}
    if env.get("OLLAMA_MODELS"):
        return Path(env["OLLAMA_MODELS"])
    if env.get("HOME") and not settings.server.models_dir:
        return Path(env["HOME"]) / ".ollama" / "models"
    # as services.doctor.models_dir (not imported here: status stays lean)
    configured = settings.server.models_dir or os.environ.get("OLLAMA_MODELS")
    return Path(configured).expanduser() if configured else Path.home() / ".ollama" / "models"


def _log_files(record: Any) -> list[Path]:
    """The log files of the daemon `record` describes; none without a record (sollama does not manage it)."""
    if record is None:
        return []
    files: list[Path] = []
    if getattr(record, "log", ""):
        files.append(Path(record.log))
    try:
        from ollama_ops.edges import process

        files += process.server_log_paths()
    except ModuleNotFoundError:
        from ollama_ops import paths

        files += sorted((paths.state_dir() / "logs").glob("*.log*"))
    unique = list(dict.fromkeys(p for p in files if p.is_file()))
    return unique


def log_status(record: Any, limit: int = 5) -> LogStatus:
    """The last error lines of the daemon's log files (the current file last, so its errors come last)."""
    files = _log_files(record)
    lines: list[str] = []
    for path in reversed(files):  # oldest rotated file first
        try:
            with open(path, "rb") as fh:
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - LOG_TAIL_BYTES))
                lines += fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            continue
    return LogStatus(files=[str(p) for p in files], errors=health.error_lines(lines, limit))


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
    local = _begin_local(address) if address.is_local else None
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
                _local_facts(report, local, settings, sample_s)
                return report
            ps, tags = [], []
        report.loaded = loaded_models(ps, now)
        if report.error is None:
            report.installed = InstalledModels(count=len(tags),
                                               total_size=sum(int(t.get("size") or 0) for t in tags))
        _local_facts(report, local, settings, sample_s)
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


def _local_facts(report: StatusReport, local: _LocalProbe | None, settings: Any, sample_s: float) -> None:
    """Process, disk, memory and log facts; only for an address on this machine (`local` is None otherwise)."""
    if local is None:
        return
    from ollama_ops.core.memory_plan import compute_budget
    from ollama_ops.edges import system

    # Also when unreachable: a live process that does not answer (hung, still starting) is worth showing.
    process = _process_status(local, sample_s)
    report.process = process
    report.log = log_status(local.record)
    directory = _models_dir(process.pid if process else None, settings)
    try:
        report.disk = DiskStatus(path=str(directory), free=system.disk_free(directory),
                                 total=system.disk_total(directory))
    except OSError:
        report.disk = None
    mem = system.memory_facts()  # read once, for the budget and the report
    gpus = system.gpu_facts()
    budget = compute_budget(mem.total, settings.memory.reserve, sum(g.total for g in gpus), len(gpus)).total
    report.memory = MemoryStatus(budget=budget, used=sum(m.size for m in report.loaded),
                                 total_ram=mem.total, available_ram=mem.available)


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


def status(settings: Any, *, deep: bool = False, model: str | None = None, deep_timeout: float = 30.0,
           wait: float | None = None, api_key: str | None = None) -> StatusReport:
    """The command's one entry point: optionally wait until reachable, then collect the report (with the
    gateway's section when one is configured or answers on gateway.listen)."""
    from ollama_ops.services.gateway_status import gateway_status

    if wait is not None:
        wait_until_reachable(settings, wait)
    report = collect_status(settings, deep=deep, model=model, deep_timeout=deep_timeout, api_key=api_key)
    report.gateway = gateway_status(settings, api_key=api_key)
    return report
