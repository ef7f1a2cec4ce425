"""`sollama cleanup`: plan what can be freed, then do it, each step reporting what it freed.

Steps, in order: stop the managed gateway (`start --gateway`; only when asked, before the daemon, so it drains
first); unload loaded models; stop the daemon (only when asked); remove stale pid/lock files; rotate
daemon logs over `logging.max_log_bytes`; prune bench history older than a cut-off; terminate orphaned Ollama
runner processes whose server is gone. The plan carries what was seen (pid + creation time + command line for
processes), and doing re-verifies it, so nothing changed in between is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_ops import paths
from ollama_ops.core.hosts import parse_host
from ollama_ops.core.units import format_bytes
from ollama_ops.edges import process as pf
from ollama_ops.errors import SollamaError


@dataclass
class CleanupStep:
    """One thing cleanup can do: `action` in words, the `targets`, and the bytes/count it expects to free;
    `skipped` says why there is nothing to do."""

    name: str
    action: str
    targets: list[str] = field(default_factory=list)
    bytes: int | None = None
    count: int = 0
    skipped: str | None = None
    details: list[Any] = field(default_factory=list, metadata={"json_skip": True})


@dataclass
class CleanupPlan:
    steps: list[CleanupStep]
    dry_run: bool = False

    @property
    def todo(self) -> list[CleanupStep]:
        return [s for s in self.steps if s.skipped is None]


@dataclass
class StepOutcome:
    name: str
    ok: bool
    freed: str
    bytes: int | None = None
    count: int = 0
    error: str | None = None


@dataclass
class CleanupReport:
    outcomes: list[StepOutcome]

    @property
    def failed(self) -> bool:
        return any(not o.ok for o in self.outcomes)


@dataclass
class CleanupResult:
    """The plan, and what doing it freed (None for --dry-run or when nothing was done)."""

    plan: CleanupPlan
    report: CleanupReport | None = None


# -- planning ---------------------------------------------------------------------------------------------------

def _plan_unload(settings: Any) -> CleanupStep:
    from ollama_ops.services.lifecycle import quick_client

    addr = parse_host(settings.server.host)
    step = CleanupStep("unload", "unload every loaded model")
    try:
        with quick_client(addr.base_url, timeout=3.0) as client:
            loaded = client.ps()
    except SollamaError as exc:
        step.skipped = f"no server answers at {addr.base_url} ({exc.message})"
        return step
    if not loaded:
        step.skipped = "no model is loaded"
        return step
    step.targets = [str(m.get("name") or m.get("model")) for m in loaded]
    step.bytes = sum(int(m.get("size") or 0) for m in loaded)
    step.count = len(loaded)
    return step


def _tree_rss(proc: Any) -> int:
    import psutil

    total = 0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total


def _plan_stop(stop: bool, record: pf.PidRecord | None) -> CleanupStep:
    step = CleanupStep("stop", "stop the daemon sollama started")
    if not stop:
        step.skipped = "not asked (--stop)"
        return step
    proc = pf.verify(record)
    if proc is None or record is None:
        step.skipped = "no daemon started by sollama is running"
        return step
    step.targets = [f"ollama serve (pid {record.pid}) at {record.base_url}"]
    step.bytes = _tree_rss(proc)
    step.count = 1
    return step


def _plan_stop_gateway(stop: bool) -> CleanupStep:
    step = CleanupStep("stop-gateway", "stop the gateway sollama started (before the daemon)")
    if not stop:
        step.skipped = "not asked (--stop)"
        return step
    record, proc = _gateway_record()
    if proc is None or record is None:  # a stale record is the stale-files step's
        step.skipped = "no gateway started by sollama is running"
        return step
    step.targets = [f"sollama serve (pid {record.pid}) at {record.base_url}"]
    step.bytes = _tree_rss(proc)  # its workers too
    step.count = 1
    step.details = [(record.pid, record.create_time)]
    return step


def _plan_stale_files(stopping: bool, record: pf.PidRecord | None) -> CleanupStep:
    step = CleanupStep("stale-files", "remove stale pid and lock files")
    running = pf.verify(record) is not None
    files: list[Path] = []
    if record is not None and not running:
        files.append(pf.pidfile_path())
        step.targets.append(f"{pf.pidfile_path()} ({pf.why_stale(record)})")
    if not running and not stopping and pf.lock_path().exists() and pf.lock_is_free():
        files.append(pf.lock_path())
        step.targets.append(f"{pf.lock_path()} (no one holds it)")
    for tmp in sorted(paths.state_dir().glob(".server.json.*.tmp")):
        files.append(tmp)
        step.targets.append(f"{tmp} (left by an interrupted write)")
    gateway, gateway_proc = _gateway_record()
    if gateway is not None and gateway_proc is None:  # the managed gateway's record (`start --gateway`)
        files.append(_gateway_pidfile())
        step.targets.append(f"{_gateway_pidfile()} ({pf.why_stale(gateway)})")
    step.details = files
    step.count = len(files)
    step.bytes = sum(_size(p) for p in files)
    if not files:
        step.skipped = "no stale pid or lock file"
    return step


def _gateway_pidfile() -> Path:
    from ollama_ops.services.gateway_lifecycle import pidfile_path

    return pidfile_path()


def _gateway_record() -> tuple[pf.PidRecord | None, Any]:
    from ollama_ops.services.gateway_lifecycle import gateway_record

    return gateway_record()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _plan_rotate(max_bytes: int) -> CleanupStep:
    step = CleanupStep("rotate-logs", f"rotate daemon logs over {format_bytes(max_bytes)}")
    big = [p for p in sorted(pf.logs_dir().glob("*.log")) if _size(p) > max_bytes] if pf.logs_dir().is_dir() else []
    step.details = big
    step.targets = [f"{p} ({format_bytes(_size(p))})" for p in big]
    step.count = len(big)
    step.bytes = sum(_size(_rotated(p, pf.ROTATED_LOGS)) for p in big)
    if not big:
        step.skipped = f"no daemon log is over {format_bytes(max_bytes)}"
    return step


def _rotated(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def _history_file() -> Path:
    return paths.data_dir() / "history.sqlite3"


def _plan_prune(older_than: float | None) -> CleanupStep:
    step = CleanupStep("prune-history", "delete bench runs from the history")
    if older_than is None:
        step.skipped = "not asked (--older-than)"
        return step
    cutoff = time.time() - older_than
    step.action = f"delete bench runs started before {time.strftime('%Y-%m-%d %H:%M', time.localtime(cutoff))}"
    step.details = [cutoff]
    if not _history_file().exists():
        step.skipped = "no history database yet"
        return step
    try:
        from ollama_ops.edges.store import Store
    except ImportError:
        step.skipped = "the history store is not available in this build"
        return step
    with Store(_history_file()) as store:
        old, live = store.prunable_runs(cutoff)
    step.count = len(old)
    step.targets = [f"{len(old)} run(s)"]
    if live:  # a bench still writing them: deleting would lose its run (and fail its next write)
        step.targets.append(f"keeping {len(live)} run(s) still being written (#{', #'.join(map(str, live))})")
    if not old:
        step.skipped = "no finished bench run is that old" + (f" ({len(live)} still being written)" if live else "")
    return step


def _plan_orphans(settings: Any, record: pf.PidRecord | None) -> CleanupStep:
    step = CleanupStep("orphans", "terminate orphaned Ollama runner processes (their server is gone)")
    binaries = {b for b in (settings.ollama.binary, record.binary if record else None) if b}
    orphans = pf.find_orphan_runners(binaries)
    step.details = orphans
    step.targets = [f"pid {o.pid} (parent {o.ppid}, {format_bytes(o.rss)}): {' '.join(o.cmdline)[:100]}"
                    for o in orphans]
    step.count = len(orphans)
    step.bytes = sum(o.rss for o in orphans)
    if not orphans:
        step.skipped = "no orphaned runner"
    return step


def plan_cleanup(settings: Any, *, stop: bool = False, older_than: float | None = None, orphans: bool = True,
                 dry_run: bool = False) -> CleanupPlan:
    """What cleanup would do now; changes nothing."""
    record = pf.read_pidfile()  # one reading for every step, so the steps agree
    steps = [_plan_stop_gateway(stop), _plan_unload(settings), _plan_stop(stop, record),
             _plan_stale_files(stop, record), _plan_rotate(settings.logging.max_log_bytes), _plan_prune(older_than)]
    if orphans:
        steps.append(_plan_orphans(settings, record))
    else:
        steps.append(CleanupStep("orphans", "terminate orphaned Ollama runner processes", skipped="not asked"))
    return CleanupPlan(steps, dry_run=dry_run)


# -- doing ------------------------------------------------------------------------------------------------------

def _do_unload(settings: Any, step: CleanupStep) -> StepOutcome:
    from ollama_ops.services.lifecycle import quick_client

    done = []
    with quick_client(parse_host(settings.server.host).base_url, timeout=30.0) as client:
        for name in step.targets:
            with contextlib.suppress(SollamaError):
                client.unload(name)
                done.append(name)
    return StepOutcome("unload", len(done) == len(step.targets),
                       f"unloaded {len(done)} model(s), about {format_bytes(step.bytes)}", step.bytes, len(done))


def _do_stop(settings: Any, step: CleanupStep, timeout: float) -> StepOutcome:
    from ollama_ops.services.lifecycle import stop_server

    result = stop_server(settings, timeout=timeout)
    if result.status == "stopped":
        return StepOutcome("stop", True, f"stopped pid {result.pid} ({result.how}), about "
                           f"{format_bytes(step.bytes)}", step.bytes, 1)
    return StepOutcome("stop", True, f"nothing to stop ({result.status})", 0, 0)


def _do_stop_gateway(settings: Any, step: CleanupStep, timeout: float) -> StepOutcome:
    from ollama_ops.services.gateway_lifecycle import stop_gateway

    result = stop_gateway(settings, timeout=timeout, expect=step.details[0])
    if result.status == "stopped":
        return StepOutcome("stop-gateway", True, f"stopped the gateway, pid {result.pid} ({result.how}), about "
                           f"{format_bytes(step.bytes)}", step.bytes, 1)
    return StepOutcome("stop-gateway", True, f"nothing to stop ({'; '.join(result.notes) or result.status})", 0, 0)


def _do_stale(step: CleanupStep) -> StepOutcome:
    removed: list[Path] = []
    freed = 0
    lock_existed = pf.lock_path().exists()
    with pf.server_lock(10.0):
        record = pf.read_pidfile()
        for path in step.details:
            if path == pf.pidfile_path() and (record is None or pf.verify(record) is not None):
                continue  # it changed since the plan: a daemon now runs
            if path == pf.lock_path():
                continue  # removed below, once we let go of it
            if path == _gateway_pidfile() and _gateway_record()[1] is not None:
                continue  # it changed since the plan: a gateway now runs
            size = _size(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
                freed += size
    if pf.lock_path() in step.details and pf.remove_free_lock():
        removed.append(pf.lock_path())
    elif not lock_existed:
        pf.remove_free_lock()  # the one taking the lock just now created
    return StepOutcome("stale-files", True, f"removed {len(removed)} file(s): "
                       + (", ".join(p.name for p in removed) or "none"), freed, len(removed))


def rotate_log(path: Path, keep: int = pf.ROTATED_LOGS) -> int:
    """Copy-and-truncate rotation (the daemon keeps its O_APPEND descriptor): .N-1 → .N, the log → .1, then
    truncate it. Returns the bytes of the oldest copy that was dropped."""
    # The oldest copy is overwritten only when the one before it moves up (or there is just one copy).
    dropped = _size(_rotated(path, keep)) if keep == 1 or _rotated(path, keep - 1).exists() else 0
    for n in range(keep - 1, 0, -1):
        if _rotated(path, n).exists():
            os.replace(_rotated(path, n), _rotated(path, n + 1))
    shutil.copyfile(path, _rotated(path, 1))
    with open(path, "r+b") as fh:
        fh.truncate(0)
    return dropped


def _do_rotate(step: CleanupStep) -> StepOutcome:
    freed = 0
    for path in step.details:
        freed += rotate_log(path)
    return StepOutcome("rotate-logs", True, f"rotated {len(step.details)} log(s); dropped old copies of "
                       f"{format_bytes(freed)}", freed, len(step.details))


def _do_prune(step: CleanupStep) -> StepOutcome:
    from ollama_ops.edges.store import Store

    with Store(_history_file()) as store:
        count = int(store.prune_runs(step.details[0]))
    return StepOutcome("prune-history", True, f"deleted {count} bench run(s)", None, count)


def _do_orphans(step: CleanupStep, timeout: float) -> StepOutcome:
    stopped = 0
    freed = 0
    for orphan in step.details:
        if pf.terminate_orphan(orphan, timeout) is not None:
            stopped += 1
            freed += orphan.rss
    return StepOutcome("orphans", stopped == len(step.details),
                       f"terminated {stopped} orphaned runner(s), about {format_bytes(freed)}", freed, stopped)


def run_cleanup(settings: Any, plan: CleanupPlan, *, timeout: float = 10.0) -> CleanupReport:
    """Do the steps of `plan` that have something to do; a failing step is reported and the rest go on."""
    outcomes = []
    for step in plan.todo:
        try:
            if step.name == "stop-gateway":
                outcome = _do_stop_gateway(settings, step, timeout)
            elif step.name == "unload":
                outcome = _do_unload(settings, step)
            elif step.name == "stop":
                outcome = _do_stop(settings, step, timeout)
            elif step.name == "stale-files":
                outcome = _do_stale(step)
            elif step.name == "rotate-logs":
                outcome = _do_rotate(step)
            elif step.name == "prune-history":
                outcome = _do_prune(step)
            else:
                outcome = _do_orphans(step, timeout)
        except (SollamaError, OSError) as exc:
            message = exc.one_line() if isinstance(exc, SollamaError) else str(exc)
            outcome = StepOutcome(step.name, False, "nothing", error=message)
        outcomes.append(outcome)
    return CleanupReport(outcomes)
