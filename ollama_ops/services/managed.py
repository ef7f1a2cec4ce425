"""A process sollama manages (the Ollama daemon, the gateway): start it detached under its lock, wait until it is
ready, and stop it, only ever signalling the process its pid record names after verifying it (PID, creation time,
command line).

One `Managed` describes a process: where its pid record and lock live, what it runs, where it logs, the address
it listens on and how to probe it. `services.lifecycle` (the daemon) and `services.gateway_lifecycle` (the
gateway) each build one and share the code here.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ollama_ops import __version__
from ollama_ops.core.hosts import HostAddress, parse_host
from ollama_ops.edges import process as pf
from ollama_ops.errors import ProcessError, RequestTimeout

Spinner = Callable[[str], AbstractContextManager[Any]]
LOCK_GRACE = 15.0
# probe answers: ready; "up" = answers as this kind of server but is not ready yet (the gateway's upstream is
# not); "none" = nothing listens; "other" = something else holds the port
READY, UP, NONE, OTHER = "ready", "up", "none", "other"


class DaemonDiedAtStart(ProcessError):
    """The process exited before it was ready; `log_tail` holds its last log lines (from `log`)."""

    def __init__(self, message: str, log_tail: list[str], log: str = "") -> None:
        super().__init__(message, hint="see the log lines above")
        self.log_tail = log_tail
        self.log = log


class StartTimedOut(RequestTimeout):
    """Not ready within the timeout (a process this start spawned was stopped); `log_tail` holds its last lines."""

    def __init__(self, message: str, log_tail: list[str], log: str = "") -> None:
        super().__init__(message, hint="raise --timeout (server.start_timeout) or see the log lines above")
        self.log_tail = log_tail
        self.log = log


@dataclass
class Managed:
    """One process sollama manages.

    name: what it is in messages ("ollama serve"); pidfile, lock: its pid record and its start/stop lock;
    command: what is spawned; record_cmdline: what it runs once any wrapper has exec'd (the record's first guess);
    accepts: which command lines may be this kind of process (a record naming anything else is never trusted);
    probe: READY | UP | NONE | OTHER for the address now; version: what it says it is, once ready.
    """

    name: str
    pidfile: Path
    lock: Path
    command: list[str]
    env: Mapping[str, str]
    log: Path
    address: HostAddress
    probe: Callable[[], str]
    accepts: Callable[[list[str]], bool] = pf.is_serve_cmdline
    record_cmdline: list[str] = field(default_factory=list)
    binary: str = ""
    version: Callable[[], str | None] = lambda: None
    not_ready: Callable[[], str] = lambda: "did not answer"
    kind: str = ""  # what the port holder is not, in words ("Ollama"); default: name
    address_hint: str = "choose another address"


@dataclass
class StartResult:
    """What `sollama start` did ("started", "already-running" or "dry-run") and the process it left running;
    `gateway`: the same for the gateway (`start --gateway`)."""

    status: str
    address: str
    pid: int | None = None
    version: str | None = None
    log: str | None = None
    memory_budget: int | None = None
    started_by: str | None = None
    started_at: str | None = None
    waited_s: float | None = None
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    env_sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gateway: StartResult | None = None


@dataclass
class StopResult:
    """What `sollama stop` did: "stopped" (how: sigterm/sigkill/exited), "stale" (pid file removed, nothing
    signalled) or "not-running"; `gateway`: the same for the gateway, stopped first."""

    status: str
    pid: int | None = None
    how: str | None = None
    waited_s: float | None = None
    stale_reason: str | None = None
    notes: list[str] = field(default_factory=list)
    gateway: StopResult | None = None


def started_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"sollama {__version__} ({user}@{socket.gethostname()})"


def serves_at(record: pf.PidRecord, addr: HostAddress) -> bool:
    """Whether the process a pid record describes listens at `addr` (same port, and `addr` is this machine)."""
    return bool(record.host) and addr.is_local and parse_host(record.host).port == addr.port


def listener_description(port: int) -> str | None:
    """Who listens on a local TCP port, in words."""
    from ollama_ops.edges.system import listener_on

    info = listener_on(port)
    if info is None:
        return None
    cmd = " ".join(info.cmdline)
    text = f"{info.name} (pid {info.pid or '?'}" + (f", user {info.username})" if info.username else ")")
    return text + (f": {cmd[:120]}" if cmd else "")


def log_tail(log: Path, offset: int, lines: int = 20) -> list[str]:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


def verified(spec: Managed) -> tuple[pf.PidRecord | None, Any]:
    """(record, verified psutil process or None) of the spec's pid file."""
    record = pf.read_pidfile(spec.pidfile)
    return record, pf.verify(record, accepts=spec.accepts)


def write_record(server: pf.ServerProcess, spec: Managed) -> pf.PidRecord:
    addr = spec.address
    record = server.record(spec.record_cmdline or spec.command, host=addr.bind.split("://", 1)[-1],
                           base_url=addr.base_url, binary=spec.binary, log=str(spec.log), started_by=started_by(),
                           started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    pf.write_pidfile(record, spec.pidfile)
    return record


def confirm_record(server: pf.ServerProcess, record: pf.PidRecord, spec: Managed) -> pf.PidRecord:
    """Once it answers it has exec'd into its final form (past a wrapper script or systemd-run): record the
    command line it really has, which is what `verify` will compare."""
    actual = server.cmdline()
    if actual and actual != record.cmdline:
        record.cmdline = actual
        pf.write_pidfile(record, spec.pidfile)
    return record


Running = Callable[[Any, "pf.PidRecord | None", list[str]], StartResult]


def preflight(spec: Managed, notes: list[str], running: Running) -> tuple[StartResult | None, Any]:
    """Under the lock: is one already there, is the port taken, is the pid file stale? `running(proc, record,
    notes)` describes one that already answers."""
    record, proc = verified(spec)
    if record is not None and proc is None:
        pf.remove_pidfile(spec.pidfile)
        notes.append(f"removed a stale pid file ({pf.why_stale(record)}); nothing was signalled")
    if proc is not None and record is not None and not serves_at(record, spec.address):
        raise ProcessError(f"the {spec.name} sollama started already runs at {record.base_url} (pid {record.pid})",
                           hint="stop it first (`sollama stop`) or use that address")
    state = spec.probe()
    if state in (READY, UP):
        return running(proc, record, notes), proc
    if state == OTHER:
        holder = listener_description(spec.address.port) or "an unknown process"
        raise ProcessError(f"port {spec.address.port} is held by {holder}, which is not {spec.kind or spec.name}",
                           hint=spec.address_hint)
    return None, proc


def wait_ready(server: pf.ServerProcess, spec: Managed, timeout: float, offset: int, spinner: Spinner, *,
               ours: bool = True) -> float:
    """Seconds until the probe says READY. A process this call spawned is stopped again when it is not ready in
    time; one an earlier start left (`ours=False`) is left running."""
    start = time.monotonic()
    deadline = start + timeout
    state = NONE
    with spinner(f"waiting for {spec.name} at {spec.address.base_url} (pid {server.pid})"):
        while True:
            if not server.alive():
                rc = server.returncode()
                time.sleep(0.1)  # let the last lines reach the log
                raise DaemonDiedAtStart(f"{spec.name} (pid {server.pid}) exited with code {rc} while starting",
                                        log_tail(spec.log, offset), str(spec.log))
            state = spec.probe()
            if state == READY:
                return time.monotonic() - start
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    why = spec.not_ready() if state == UP else "did not answer"
    if not ours:
        raise StartTimedOut(f"the {spec.name} sollama started earlier (pid {server.pid}) runs but {why} at "
                            f"{spec.address.base_url} within {timeout:g}s; left it running",
                            log_tail(spec.log, offset), str(spec.log))
    server.stop(5.0)
    raise StartTimedOut(f"{spec.name} {why} at {spec.address.base_url} within {timeout:g}s; stopped it "
                        f"(pid {server.pid})", log_tail(spec.log, offset), str(spec.log))


def start_managed(spec: Managed, *, timeout: float, spinner: Spinner | None = None,
                  running: Running, notes: list[str] | None = None) -> StartResult:
    """Start `spec` detached under its lock and wait until it is ready, or report the one already answering."""
    spinner = spinner or (lambda _msg: nullcontext())
    notes = list(notes or [])
    with pf.server_lock(timeout + LOCK_GRACE, spec.lock):
        existing, proc = preflight(spec, notes, running)
        if existing is not None:
            return existing
        if proc is not None:  # ours, verified, but not answering yet: give it the same time
            server = pf.ServerProcess(proc)
            record = pf.read_pidfile(spec.pidfile)
            offset = 0
        else:
            offset = spec.log.stat().st_size if spec.log.exists() else 0
            server = pf.ServerProcess.spawn(spec.command, spec.env, spec.log)
            record = write_record(server, spec)
        try:
            waited = wait_ready(server, spec, timeout, offset, spinner, ours=proc is None)
        except DaemonDiedAtStart:
            pf.remove_pidfile(spec.pidfile)
            raise
        except StartTimedOut:
            if proc is None:
                pf.remove_pidfile(spec.pidfile)
            raise
        assert record is not None
        record = confirm_record(server, record, spec)
        version = None
        with contextlib.suppress(Exception):
            version = spec.version()
    return StartResult("started" if proc is None else "already-running", spec.address.base_url, pid=server.pid,
                       version=version, log=str(spec.log), started_by=record.started_by,
                       started_at=record.started_at, waited_s=round(waited, 3), command=list(spec.command),
                       notes=notes)


def stop_managed(spec: Managed, *, timeout: float, lock_timeout: float,
                 leave_alone: Callable[[pf.PidRecord], list[str] | None] = lambda _r: None,
                 absent: Callable[[], list[str]] = list) -> StopResult:
    """SIGTERM the verified process, wait up to `timeout`, then SIGKILL. A stale pid file is removed and nothing
    is signalled; no pid file at all is not an error (`absent()` adds notes then). `leave_alone(record)` returns
    notes when a verified process must not be stopped (it runs at another address than the one asked for)."""
    with pf.server_lock(lock_timeout + LOCK_GRACE, spec.lock):
        record, proc = verified(spec)
        if record is None:
            return StopResult("not-running", notes=absent())
        if proc is not None:
            kept = leave_alone(record)
            if kept is not None:
                return StopResult("not-running", notes=kept)
        if proc is None:
            pf.remove_pidfile(spec.pidfile)
            return StopResult("stale", pid=record.pid or None, stale_reason=pf.why_stale(record),
                              notes=["removed the stale pid file; nothing was signalled"])
        started = time.monotonic()
        how = pf.ServerProcess(proc).stop(timeout)
        pf.remove_pidfile(spec.pidfile)
    return StopResult("stopped", pid=record.pid, how=how, waited_s=round(time.monotonic() - started, 3))
