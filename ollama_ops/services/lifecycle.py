"""Bring the one shared `ollama serve` up and down: plan the launch, start (detached or attached), stop, restart.

Every start and stop runs under `state_dir/server.lock`, so concurrent `sollama start` give exactly one daemon;
the pid file written there is the only thing `stop` will ever signal, and only after verifying it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ollama_ops import __version__
from ollama_ops.core.hosts import HostAddress, parse_host
from ollama_ops.edges import process as pf
from ollama_ops.errors import (
    OllamaError,
    ProcessError,
    RequestTimeout,
    ServerError,
    ServerUnreachable,
    SollamaError,
    UsageError,
)
from ollama_ops.services.launch import LaunchPlan

Spinner = Callable[[str], AbstractContextManager[Any]]
LOCK_GRACE = 15.0


class DaemonDiedAtStart(ProcessError):
    """`ollama serve` exited before it answered; `log_tail` holds its last log lines."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message, hint="see the log lines above")
        self.log_tail = log_tail


class StartTimedOut(RequestTimeout):
    """The daemon did not answer within --timeout; it was stopped. `log_tail` holds its last log lines."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message, hint="raise --timeout (server.start_timeout) or see the log lines above")
        self.log_tail = log_tail


@dataclass
class StartResult:
    """What `sollama start` did ("started", "already-running" or "dry-run") and the daemon it left running."""

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


@dataclass
class StopResult:
    """What `sollama stop` did: "stopped" (how: sigterm/sigkill/exited), "stale" (pid file removed, nothing
    signalled) or "not-running"."""

    status: str
    pid: int | None = None
    how: str | None = None
    waited_s: float | None = None
    stale_reason: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class RestartResult:
    stop: StopResult
    start: StartResult


# -- probing the address ----------------------------------------------------------------------------------------

def quick_client(base_url: str, timeout: float = 2.0) -> Any:
    from ollama_ops.client.resilience import CircuitBreaker
    from ollama_ops.client.sync import Client

    return Client(base_url, connect_timeout=min(timeout, 1.0), read_timeout=timeout, retries=0, busy_retries=0,
                  breaker=CircuitBreaker(failures=1 << 30))


def probe(client: Any) -> str:
    """"ollama" when Ollama answers GET /, "other" when something else holds the port, "none" when nothing."""
    try:
        client.ping()
        return "ollama"
    except ServerUnreachable:
        return "none"
    except (OllamaError, RequestTimeout, ServerError):
        return "other"


def listener_description(port: int) -> str | None:
    """Who listens on a local TCP port, in words."""
    from ollama_ops.edges.system import listener_on

    info = listener_on(port)
    if info is None:
        return None
    cmd = " ".join(info.cmdline)
    text = f"{info.name} (pid {info.pid or '?'}" + (f", user {info.username})" if info.username else ")")
    return text + (f": {cmd[:120]}" if cmd else "")


def _listener_pid(port: int) -> int | None:
    from ollama_ops.edges.system import listener_on

    info = listener_on(port)
    return info.pid if info is not None else None


# -- start ------------------------------------------------------------------------------------------------------

def _started_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"sollama {__version__} ({user}@{socket.gethostname()})"


def _write_record(server: pf.ServerProcess, plan: LaunchPlan) -> pf.PidRecord:
    record = server.record(plan.serve_cmdline, host=plan.address.bind.split("://", 1)[-1],
                           base_url=plan.address.base_url,
                           binary=plan.binary, log=plan.log, started_by=_started_by(),
                           started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    pf.write_pidfile(record)
    return record


def _confirm_record(server: pf.ServerProcess, record: pf.PidRecord) -> pf.PidRecord:
    """Once the daemon answers it has exec'd into its final form (past a wrapper script or systemd-run):
    record the command line it really has, which is what `verify` will compare."""
    actual = server.cmdline()
    if actual and actual != record.cmdline:
        record.cmdline = actual
        pf.write_pidfile(record)
    return record


def _already_running(client: Any, addr: HostAddress, proc: Any, record: pf.PidRecord | None,
                     notes: list[str]) -> StartResult:
    version = None
    with contextlib.suppress(SollamaError):
        version = client.version()
    if proc is not None and record is not None:
        return StartResult("already-running", addr.base_url, pid=record.pid, version=version, log=record.log,
                           started_by=record.started_by, started_at=record.started_at, notes=notes)
    from ollama_ops.edges.system import listener_on

    info = listener_on(addr.port) if addr.is_local else None
    owner = "not started by sollama" + (f" (user {info.username})" if info and info.username else "")
    return StartResult("already-running", addr.base_url, pid=info.pid if info else None, version=version,
                       started_by=owner, notes=notes)


def _check_address(addr: HostAddress) -> None:
    if not addr.is_local:
        raise UsageError(f"{addr.base_url} is not an address of this machine; sollama starts the daemon locally",
                         hint="use a loopback address such as --host 127.0.0.1:11434")


def _preflight(addr: HostAddress, client: Any, notes: list[str]) -> tuple[StartResult | None, Any]:
    """Under the lock: is an Ollama already there, is the port taken, is the pid file stale?"""
    record = pf.read_pidfile()
    proc = pf.verify(record)
    if record is not None and proc is None:
        pf.remove_pidfile()
        notes.append(f"removed a stale pid file ({pf.why_stale(record)}); nothing was signalled")
    if proc is not None and record is not None and not serves_at(record, addr):
        raise ProcessError(f"the daemon sollama started already runs at {record.base_url} (pid {record.pid})",
                           hint="stop it first (`sollama stop`) or use that address")
    state = probe(client)
    if state == "ollama":
        return _already_running(client, addr, proc, record, notes), proc
    if state == "other":
        holder = listener_description(addr.port) or "an unknown process"
        raise ProcessError(f"port {addr.port} is held by {holder}, which is not Ollama",
                           hint="choose another address with --host 127.0.0.1:<port>")
    return None, proc


def _log_tail(log: Path, offset: int, lines: int = 20) -> list[str]:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


def _wait_ready(server: pf.ServerProcess, client: Any, plan: LaunchPlan, timeout: float, offset: int,
                spinner: Spinner, *, ours: bool = True) -> float:
    """Seconds until GET / answered. A daemon this call spawned is stopped again when it does not answer in
    time; one an earlier start left (`ours=False`) is left running."""
    start = time.monotonic()
    deadline = start + timeout
    with spinner(f"waiting for ollama serve at {plan.address.base_url} (pid {server.pid})"):
        while True:
            if not server.alive():
                rc = server.returncode()
                time.sleep(0.1)  # let the last lines reach the log
                tail = _log_tail(Path(plan.log), offset)
                raise DaemonDiedAtStart(f"ollama serve (pid {server.pid}) exited with code {rc} while starting",
                                        tail)
            if probe(client) == "ollama":
                return time.monotonic() - start
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    if not ours:
        raise StartTimedOut(f"the daemon sollama started earlier (pid {server.pid}) runs but does not answer at "
                            f"{plan.address.base_url} within {timeout:g}s; left it running",
                            _log_tail(Path(plan.log), offset))
    server.stop(5.0)
    raise StartTimedOut(f"ollama serve did not answer at {plan.address.base_url} within {timeout:g}s; "
                        f"stopped it (pid {server.pid})", _log_tail(Path(plan.log), offset))


def start_server(settings: Any, plan: LaunchPlan, *, timeout: float | None = None,
                 spinner: Spinner | None = None) -> StartResult:
    """Start the daemon detached, or report the one already answering at the address."""
    _check_address(plan.address)
    timeout = settings.server.start_timeout if timeout is None else timeout
    spinner = spinner or (lambda _msg: nullcontext())
    notes = list(plan.notes)
    with quick_client(plan.address.base_url) as client, pf.server_lock(timeout + LOCK_GRACE):
        existing, proc = _preflight(plan.address, client, notes)
        if existing is not None:
            return existing
        if proc is not None:  # ours, verified, but not answering yet: give it the same time
            server = pf.ServerProcess(proc)
            record = pf.read_pidfile()
            offset = 0
        else:
            log = Path(plan.log)
            offset = log.stat().st_size if log.exists() else 0
            server = pf.ServerProcess.spawn(plan.command, plan.full_env, log)
            record = _write_record(server, plan)
        try:
            waited = _wait_ready(server, client, plan, timeout, offset, spinner, ours=proc is None)
        except DaemonDiedAtStart:
            pf.remove_pidfile()
            raise
        except StartTimedOut:
            if proc is None:
                pf.remove_pidfile()
            raise
        if record is not None:
            record = _confirm_record(server, record)
        version = None
        with contextlib.suppress(SollamaError):
            version = client.version()
    assert record is not None
    status = "started" if proc is None else "already-running"
    return StartResult(status, plan.address.base_url, pid=server.pid, version=version, log=plan.log,
                       memory_budget=plan.memory_budget, started_by=record.started_by,
                       started_at=record.started_at, waited_s=round(waited, 3), command=plan.command,
                       env=plan.env, env_sources=plan.env_sources, notes=notes, warnings=list(plan.warnings))


def dry_run(plan: LaunchPlan) -> StartResult:
    """What `start` would run, starting nothing."""
    return StartResult("dry-run", plan.address.base_url, log=plan.log, memory_budget=plan.memory_budget,
                       command=plan.command, env=plan.env, env_sources=plan.env_sources, notes=list(plan.notes),
                       warnings=list(plan.warnings))


def run_foreground(settings: Any, plan: LaunchPlan, *, echo: BinaryIO | None = None,
                   on_start: Callable[[int], None] | None = None) -> int:
    """Run `ollama serve` attached (systemd, containers): SIGINT/SIGTERM are forwarded, and its exit status is
    returned (128+N when killed by signal N). The daemon writes its output to the log file itself, which is
    followed and copied to `echo` (the command passes its stderr): never to a pipe through sollama, which would
    break (and kill the daemon at its next log line) if sollama were killed."""
    _check_address(plan.address)
    notes: list[str] = list(plan.notes)
    with quick_client(plan.address.base_url) as client, pf.server_lock(settings.server.start_timeout + LOCK_GRACE):
        existing, _ = _preflight(plan.address, client, notes)
        if existing is not None:
            raise ProcessError(f"an Ollama already answers at {plan.address.base_url} (pid {existing.pid or '?'})",
                               hint="stop it first, or choose another --host")
        log = Path(plan.log)
        offset = log.stat().st_size if log.exists() else 0
        server = pf.ServerProcess.spawn(plan.command, plan.full_env, log)
        record = _write_record(server, plan)
    assert server.popen is not None
    done = threading.Event()
    copier = threading.Thread(target=_follow_log, args=(log, offset, echo, done), daemon=True)
    if echo is not None:
        copier.start()
    if on_start:
        on_start(server.pid)

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            server.popen.send_signal(signum)  # type: ignore[union-attr]

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = _wait_attached(server, record, client_url=plan.address.base_url,
                            confirm_within=settings.server.start_timeout)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        done.set()
        if copier.is_alive():
            copier.join(timeout=2)
        left = pf.read_pidfile()
        if left is not None and left.pid == server.pid and pf.verify(left) is None:
            pf.remove_pidfile()
    return 128 - rc if rc < 0 else rc


def _wait_attached(server: pf.ServerProcess, record: pf.PidRecord, *, client_url: str,
                   confirm_within: float) -> int:
    """Wait for the attached daemon to exit; once it answers, confirm its pid record."""
    assert server.popen is not None
    deadline = time.monotonic() + confirm_within
    confirmed = False
    with quick_client(client_url, timeout=1.0) as client:
        while True:
            try:
                return server.popen.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                pass
            if not confirmed and (probe(client) == "ollama" or time.monotonic() > deadline):
                _confirm_record(server, record)
                confirmed = True


def _follow_log(log: Path, offset: int, echo: BinaryIO, done: threading.Event, poll: float = 0.1) -> None:
    """Copy what the daemon appends to `log` (from `offset`) to `echo` until `done` is set, then the rest. A log
    truncated by rotation (`cleanup`) is read again from its start."""

    def copy(fh: BinaryIO) -> None:
        while True:
            chunk = fh.read(65536)
            if not chunk:
                return
            with contextlib.suppress(OSError, ValueError):
                echo.write(chunk)
                echo.flush()

    fh: BinaryIO | None = None
    try:
        while True:
            finishing = done.is_set()
            if fh is None:
                with contextlib.suppress(OSError):
                    fh = open(log, "rb")  # noqa: SIM115 - kept open across polls, closed below
                    fh.seek(offset)
            if fh is not None:
                with contextlib.suppress(OSError):
                    if os.fstat(fh.fileno()).st_size < fh.tell():
                        fh.seek(0)
                copy(fh)
            if finishing:
                return
            done.wait(poll)
    finally:
        if fh is not None:
            fh.close()


# -- stop / restart ---------------------------------------------------------------------------------------------

def serves_at(record: pf.PidRecord, addr: HostAddress) -> bool:
    """Whether the daemon a pid record describes listens at `addr` (same port, and `addr` is this machine)."""
    return bool(record.host) and addr.is_local and parse_host(record.host).port == addr.port


def _address_chosen(settings: Any) -> bool:
    """True when the address came from --host, the environment or a config file (not the built-in default)."""
    return settings.sources.get("server.host", "default") != "default"


def _foreign_note(addr: HostAddress) -> list[str]:
    with quick_client(addr.base_url, timeout=1.0) as client:
        if probe(client) != "ollama":
            return []
    pid = _listener_pid(addr.port) if addr.is_local else None
    return [f"an Ollama answers at {addr.base_url}" + (f" (pid {pid})" if pid else "")
            + " but sollama did not start it; left it alone"]


def stop_server(settings: Any, *, timeout: float = 10.0) -> StopResult:
    """SIGTERM the verified daemon, wait up to `timeout`, then SIGKILL. A stale pid file is removed and
    nothing is signalled; no pid file at all is not an error. When an address was chosen (--host, environment,
    config), only the daemon at that address is stopped: the one sollama started elsewhere is left alone."""
    addr = parse_host(settings.server.host)
    with pf.server_lock(max(timeout, settings.server.start_timeout) + LOCK_GRACE):
        record = pf.read_pidfile()
        if record is None:
            return StopResult("not-running", notes=_foreign_note(addr))
        if _address_chosen(settings) and record.host and not serves_at(record, addr) \
                and pf.verify(record) is not None:
            return StopResult("not-running", notes=[
                f"the daemon sollama started runs at {record.base_url} (pid {record.pid}), not at "
                f"{addr.base_url}; left it alone", *_foreign_note(addr)])
        proc = pf.verify(record)
        if proc is None:
            pf.remove_pidfile()
            return StopResult("stale", pid=record.pid or None, stale_reason=pf.why_stale(record),
                              notes=["removed the stale pid file; nothing was signalled"])
        started = time.monotonic()
        how = pf.ServerProcess(proc).stop(timeout)
        pf.remove_pidfile()
    return StopResult("stopped", pid=record.pid, how=how, waited_s=round(time.monotonic() - started, 3))


def restart_server(settings: Any, plan: LaunchPlan, *, timeout: float = 10.0, start_timeout: float | None = None,
                   spinner: Spinner | None = None) -> RestartResult:
    """stop + start with the same settings."""
    stopped = stop_server(settings, timeout=timeout)
    return RestartResult(stopped, start_server(settings, plan, timeout=start_timeout, spinner=spinner))
