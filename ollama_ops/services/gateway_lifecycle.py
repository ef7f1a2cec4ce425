"""The gateway (`sollama serve`) as a second managed process: `sollama start --gateway` starts it detached after the
daemon, `stop` stops it first (SIGTERM: it drains, then exits), `restart` restarts it when it ran.

It has its own pid record (`state_dir/gateway.json`: PID, creation time, command line), lock (`gateway.lock`) and
process log (`logs/gateway-process.log`; the access log stays `logs/gateway.log`), and is ready when its `/healthz`
answers as a sollama gateway and its `/readyz` says the upstream answers. The same verified-PID rule as the
daemon's holds: a record that does not verify is removed and nothing is signalled.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ollama_ops import paths
from ollama_ops.core.hosts import parse_host
from ollama_ops.edges import process as pf
from ollama_ops.services.managed import (
    NONE,
    OTHER,
    READY,
    UP,
    Managed,
    Spinner,
    StartResult,
    StopResult,
    start_managed,
    stop_managed,
    verified,
)

STOP_GRACE = 5.0  # seconds past gateway.drain_timeout before SIGKILL


def pidfile_path() -> Path:
    return paths.state_dir() / "gateway.json"


def lock_path() -> Path:
    return paths.state_dir() / "gateway.lock"


def process_log_path() -> Path:
    """The gateway process's own output (start-up lines, drain messages, errors)."""
    return pf.logs_dir() / "gateway-process.log"


def is_gateway_cmdline(cmdline: list[str]) -> bool:
    """A `sollama serve` (the `sollama` script, or `python -m ollama_ops`): never an `ollama serve`."""
    if "serve" not in cmdline[1:]:
        return False
    head = cmdline[: cmdline.index("serve")]
    return any(os.path.basename(arg) == "sollama" or arg == "ollama_ops" for arg in head)


def probe(base_url: str) -> str:
    """READY (/healthz answers as a gateway and /readyz 200), UP (/healthz only), NONE or OTHER."""
    import httpx

    with httpx.Client(base_url=base_url, timeout=2.0, trust_env=False) as http:
        try:
            health = http.get("/healthz")
        except httpx.ConnectError:
            return NONE
        except httpx.HTTPError:
            return OTHER
        try:
            body = health.json() if health.status_code == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or "draining" not in body:
            return OTHER
        try:
            return READY if http.get("/readyz").status_code == 200 else UP
        except httpx.HTTPError:
            return UP


@dataclass
class GatewayPlan:
    """What `start --gateway` runs: the command, its listen address and the upstream it fronts."""

    command: list[str]
    listen: str  # HOST:PORT
    url: str
    upstream: str
    drain_timeout: float
    workers: int = 1


def plan_gateway(settings: Any, *, listen: str | None = None, config_path: str | None = None,
                 workers: int | None = None) -> GatewayPlan:
    """The gateway's command from the settings (`gateway.listen` unless `listen`, `gateway.workers` unless
    `workers`); refuses what `sollama serve` itself would refuse at start (auth off beyond loopback: exit 3;
    several workers without shared state: exit 2 for `workers`, 3 for gateway.workers), before anything is
    spawned."""
    from ollama_ops.gateway.compose import open_keyring
    from ollama_ops.gateway.settings import check_exposure, from_settings

    config = from_settings(settings, listen=listen, workers=workers)
    check_exposure(config, len(open_keyring(config)))
    host = f"[{config.listen_host}]" if ":" in config.listen_host else config.listen_host
    address = f"{host}:{config.listen_port}"
    command = [sys.executable, "-m", "ollama_ops", *(["--config", config_path] if config_path else []), "serve",
               "--listen", address, "--workers", str(config.workers)]
    if not config.upstreams:  # one upstream: the one resolved here (--host on `start` included)
        command += ["--upstream", config.upstream]
    return GatewayPlan(command=command, listen=address, url=config.listen_url, upstream=config.upstream,
                       drain_timeout=config.drain_timeout, workers=config.workers)


def gateway_spec(plan: GatewayPlan | None = None) -> Managed:
    """The gateway as a managed process (a spec without a plan can only be stopped)."""
    address = parse_host(plan.url if plan else "127.0.0.1:8000")
    url = plan.url if plan else address.base_url
    return Managed(name="sollama serve", pidfile=pidfile_path(), lock=lock_path(),
                   command=plan.command if plan else [], env=dict(os.environ), log=process_log_path(),
                   address=address, probe=lambda: probe(url), accepts=is_gateway_cmdline, kind="a sollama gateway",
                   address_hint="choose another with --listen HOST:PORT (or gateway.listen)",
                   not_ready=lambda: f"answers /healthz, but /readyz says its upstream "
                                     f"{plan.upstream if plan else ''} is not ready")


def _running(proc: Any, record: pf.PidRecord | None, notes: list[str], url: str) -> StartResult:
    if proc is not None and record is not None:
        return StartResult("already-running", url, pid=record.pid, log=record.log, started_by=record.started_by,
                           started_at=record.started_at, notes=notes)
    return StartResult("already-running", url, started_by="not started by sollama", notes=notes)


def start_gateway(plan: GatewayPlan, *, timeout: float, spinner: Spinner | None = None) -> StartResult:
    """Start the gateway detached and wait until /readyz answers, or report the one already answering."""
    spec = gateway_spec(plan)
    if not spec.address.is_local:
        from ollama_ops.errors import UsageError

        raise UsageError(f"{plan.url} is not an address of this machine; sollama starts the gateway locally")
    return start_managed(spec, timeout=timeout, spinner=spinner,
                         running=lambda proc, record, notes: _running(proc, record, notes, plan.url))


def gateway_record() -> tuple[pf.PidRecord | None, Any]:
    """(record, verified process) of the managed gateway; (None, None) without a record."""
    return verified(gateway_spec())


def stop_gateway(settings: Any, *, timeout: float = 10.0, expect: tuple[int, float] | None = None) -> StopResult:
    """SIGTERM the verified gateway and give it gateway.drain_timeout (+5 s) to drain before SIGKILL (never less
    than `timeout`). A stale record is removed; nothing is signalled on its word. `expect` (pid, creation time):
    stop it only if it is still that process (a plan made earlier saw it; another one started since is kept)."""
    drain = float(getattr(settings.gateway, "drain_timeout", 30.0) or 0.0)
    wait = max(timeout, drain + STOP_GRACE)

    def leave_alone(record: pf.PidRecord) -> list[str] | None:
        if expect is None or (record.pid, record.create_time) == expect:
            return None
        return [f"the gateway changed since the plan (now pid {record.pid}); left it running"]

    return stop_managed(gateway_spec(), timeout=wait, lock_timeout=wait, leave_alone=leave_alone)


# -- the daemon and the gateway together (`start --gateway`, `stop`, `restart`) ---------------------------------

def start_with_gateway(settings: Any, plan: Any, gateway: GatewayPlan | None, *, timeout: float | None = None,
                       spinner: Spinner | None = None) -> StartResult:
    """Start the daemon, then (with a plan) the gateway in front of it; `result.gateway` says what it did."""
    from ollama_ops.services.lifecycle import start_server

    result = start_server(settings, plan, timeout=timeout, spinner=spinner)
    if gateway is not None:
        wait = settings.server.start_timeout if timeout is None else timeout
        result.gateway = start_gateway(gateway, timeout=wait, spinner=spinner)
    return result


def stop_both(settings: Any, *, timeout: float = 10.0) -> StopResult:
    """Stop the managed gateway first (it drains), then the daemon; `result.gateway` says what happened to it."""
    from ollama_ops.services.lifecycle import stop_server

    gateway = stop_gateway(settings, timeout=timeout)
    result = stop_server(settings, timeout=timeout)
    result.gateway = gateway
    return result


def running_listen() -> str | None:
    """The listen address of the managed gateway when one runs (verified), else None."""
    record, proc = gateway_record()
    return record.host if record is not None and proc is not None else None


def workers_of(cmdline: list[str]) -> int | None:
    """The `--workers N` a gateway's command line gives, else None."""
    for flag, value in zip(cmdline, cmdline[1:], strict=False):
        if flag == "--workers" and value.isdigit():
            return int(value)
    return None


def running_workers() -> int | None:
    """The worker count the managed gateway runs with when one runs (verified) and its command says, else None."""
    record, proc = gateway_record()
    return workers_of(record.cmdline) if record is not None and proc is not None else None


def restart_both(settings: Any, plan: Any, gateway: GatewayPlan | None, *, timeout: float = 10.0,
                 start_timeout: float | None = None, spinner: Spinner | None = None) -> Any:
    """Stop both (gateway first), then start the daemon and, with a plan, the gateway again."""
    from ollama_ops.services.lifecycle import RestartResult

    stopped = stop_both(settings, timeout=timeout)
    return RestartResult(stopped, start_with_gateway(settings, plan, gateway, timeout=start_timeout,
                                                     spinner=spinner))
