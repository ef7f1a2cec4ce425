"""Bring the one shared `ollama serve` up and down: plan the launch, start (detached or attached), stop, restart.

Every start and stop runs under `state_dir/server.lock`, so concurrent `sollama start` give exactly one daemon;
the pid file written there is the only thing `stop` will ever signal, and only after verifying it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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
from ollama_ops.services.managed import (
    LOCK_GRACE,
    NONE,
    OTHER,
    READY,
    DaemonDiedAtStart,
    Managed,
    Spinner,
    StartResult,
    StartTimedOut,
    StopResult,
    confirm_record,
    listener_description,
    preflight,
    serves_at,
    start_managed,
    stop_managed,
    write_record,
)

__all__ = ["DaemonDiedAtStart", "RestartResult", "StartResult", "StartTimedOut", "StopResult", "daemon_spec",
           "dry_run", "listener_description", "probe", "quick_client", "restart_server", "run_foreground",
           "serves_at", "start_server", "stop_server"]


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


def _listener_pid(port: int) -> int | None:
    from ollama_ops.edges.system import listener_on

    info = listener_on(port)
    return info.pid if info is not None else None


# -- start ------------------------------------------------------------------------------------------------------

def daemon_spec(plan: LaunchPlan, client: Any) -> Managed:
    """The daemon as a managed process: `state_dir/server.json` and `server.lock`, `ollama serve`, ready when
    GET / answers."""
    states = {"ollama": READY, "none": NONE, "other": OTHER}
    return Managed(name="ollama serve", pidfile=pf.pidfile_path(), lock=pf.lock_path(), command=plan.command,
                   env=plan.full_env, log=Path(plan.log), address=plan.address,
                   probe=lambda: states[probe(client)], record_cmdline=plan.serve_cmdline, binary=plan.binary,
                   version=client.version, kind="Ollama",
                   address_hint="choose another address with --host 127.0.0.1:<port>")


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


def start_server(settings: Any, plan: LaunchPlan, *, timeout: float | None = None,
                 spinner: Spinner | None = None) -> StartResult:
    """Start the daemon detached, or report the one already answering at the address."""
    _check_address(plan.address)
    timeout = settings.server.start_timeout if timeout is None else timeout
    with quick_client(plan.address.base_url) as client:
        result = start_managed(daemon_spec(plan, client), timeout=timeout, spinner=spinner, notes=plan.notes,
                               running=lambda proc, record, notes: _already_running(client, plan.address, proc,
                                                                                    record, notes))
    if result.status == "already-running" and result.waited_s is None:
        return result
    result.memory_budget, result.env, result.env_sources = plan.memory_budget, plan.env, plan.env_sources
    result.command, result.log, result.warnings = plan.command, plan.log, list(plan.warnings)
    return result


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
        spec = daemon_spec(plan, client)
        existing, _ = preflight(spec, notes, lambda proc, record, notes: _already_running(
            client, plan.address, proc, record, notes))
        if existing is not None:
            raise ProcessError(f"an Ollama already answers at {plan.address.base_url} (pid {existing.pid or '?'})",
                               hint="stop it first, or choose another --host")
        log = Path(plan.log)
        offset = log.stat().st_size if log.exists() else 0
        server = pf.ServerProcess.spawn(plan.command, plan.full_env, log)
        record = write_record(server, spec)
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
        rc = _wait_attached(server, record, spec, client_url=plan.address.base_url,
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


def _wait_attached(server: pf.ServerProcess, record: pf.PidRecord, spec: Managed, *, client_url: str,
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
                confirm_record(server, record, spec)
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

    def leave_alone(record: pf.PidRecord) -> list[str] | None:
        if _address_chosen(settings) and record.host and not serves_at(record, addr):
            return [f"the daemon sollama started runs at {record.base_url} (pid {record.pid}), not at "
                    f"{addr.base_url}; left it alone", *_foreign_note(addr)]
        return None

    spec = Managed(name="ollama serve", pidfile=pf.pidfile_path(), lock=pf.lock_path(), command=[], env={},
                   log=pf.log_path(), address=addr, probe=lambda: NONE)
    return stop_managed(spec, timeout=timeout, lock_timeout=max(timeout, settings.server.start_timeout),
                        leave_alone=leave_alone, absent=lambda: _foreign_note(addr))


def restart_server(settings: Any, plan: LaunchPlan, *, timeout: float = 10.0, start_timeout: float | None = None,
                   spinner: Spinner | None = None) -> RestartResult:
    """stop + start with the same settings."""
    stopped = stop_server(settings, timeout=timeout)
    return RestartResult(stopped, start_server(settings, plan, timeout=start_timeout, spinner=spinner))
