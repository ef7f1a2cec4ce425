"""Facts about a daemon on this machine: its process (verified pid record, else whoever listens), its log's last
errors, the models disk and the memory budget. Only for a local address."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ollama_ops.core import health
from ollama_ops.core.hosts import HostAddress, parse_host
from ollama_ops.services.status.report import (
    LOG_TAIL_BYTES,
    DiskStatus,
    LogStatus,
    MemoryStatus,
    ProcessStatus,
    StatusReport,
)


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


def begin_local(address: HostAddress) -> _LocalProbe:
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


def local_facts(report: StatusReport, local: _LocalProbe | None, settings: Any, sample_s: float) -> None:
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
