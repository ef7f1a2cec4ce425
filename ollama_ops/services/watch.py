"""`sollama watch`: probe the daemon every `watch.interval`, and heal it (unload, then restart) when it hangs or
dies; the decisions are `core.watchdog.decide`, the restarts `services.lifecycle` (verified PID only).

Every event goes to the SQLite event log (`edges.events`), to the caller's `emit` (the CLI prints a line), to
the stdlib logger `ollama_ops.watch`, and to the optional `watch.on_event` command (the event as JSON on stdin).
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ollama_ops.core.hosts import parse_host
from ollama_ops.core.watchdog import Action, ProbeResult, WatchPolicy, WatchState, decide
from ollama_ops.edges.events import EventLog, WatchEvent
from ollama_ops.errors import RequestTimeout, ServerUnreachable, SollamaError, Unhealthy

logger = logging.getLogger("ollama_ops.watch")
HOOK_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
QUICK_TIMEOUT = 5.0  # /api/version and the unload: answered in milliseconds by a daemon that is not stuck


def policy_from(settings: Any) -> WatchPolicy:
    w = settings.watch
    return WatchPolicy(failures=w.failures, backoff=w.backoff, backoff_max=max(w.backoff, w.backoff_max),
                       max_restarts=w.max_restarts)


def _client(base_url: str, timeout: float) -> Any:
    from ollama_ops.client.resilience import CircuitBreaker
    from ollama_ops.client.sync import Client

    return Client(base_url, connect_timeout=min(timeout, 3.0), read_timeout=timeout, total_timeout=timeout,
                  retries=0, busy_retries=0, breaker=CircuitBreaker(failures=1 << 30))


def probe_model(client: Any, configured: str | None) -> str | None:
    """`watch.probe_model`, else the smallest installed model, else None (then the probe is the version only)."""
    if configured:
        return configured
    models = sorted(client.tags(), key=lambda m: (int(m.get("size") or 0), str(m.get("name"))))
    return str(models[0].get("name")) if models else None


def _failed(exc: SollamaError) -> ProbeResult:
    """A failed probe, by what went wrong: no answer at all, no answer in time, or an error answer."""
    kind = ("unreachable" if isinstance(exc, ServerUnreachable)
            else "timeout" if isinstance(exc, RequestTimeout) else "error")
    return ProbeResult(False, kind, exc.one_line())


def deep_probe(base_url: str, configured_model: str | None, timeout: float) -> tuple[ProbeResult, str | None]:
    """The version answers within min(timeout, 5 s), and a 1-token generation completes within `timeout` (which
    includes loading the model: the first probe after a restart loads it)."""
    model = configured_model
    quick = min(timeout, QUICK_TIMEOUT)
    with _client(base_url, quick) as client:
        try:
            client.version()
            model = probe_model(client, configured_model)
        except SollamaError as exc:
            return _failed(exc), model
    with _client(base_url, timeout) as client:
        try:
            if model is not None:
                client.generate(model, "Reply with OK.", options={"num_predict": 1}, keep_alive="5m")
        except SollamaError as exc:
            return _failed(exc), model
    return ProbeResult(True, "ok", f"version and a 1-token generation on {model}" if model else "version"), model


class Watchdog:
    """One watch session over one address. `run()` loops until it gives up (Unhealthy, exit 7) or is
    interrupted; `step()` is one probe and its action (tests drive it directly)."""

    def __init__(self, settings: Any, *, emit: Callable[[WatchEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 launch: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.address = parse_host(settings.server.host)
        self.policy = policy_from(settings)
        self.state = WatchState()
        self.emit = emit
        self.clock = clock
        self.sleep = sleep
        self.log = EventLog()
        self.model: str | None = settings.watch.probe_model
        self.waiting = False
        self.launch = launch  # the LaunchPlan for restarts (`start --supervise` passes its --binary/--env)

    def close(self) -> None:
        self.log.close()

    def event(self, kind: str, reason: str, *, pid: int | None = None, **detail: Any) -> WatchEvent:
        ev = WatchEvent(datetime.now(UTC).isoformat(timespec="seconds"), kind, self.address.base_url, reason,
                        pid, detail)
        self.log.add(ev)
        level = logging.ERROR if kind in ("give-up", "restart-failed") else logging.WARNING \
            if kind in ("probe-failed", "unload", "restart", "backoff") else logging.INFO
        logger.log(level, "watch %s %s: %s", kind, ev.address, reason, extra={"event": kind, "pid": pid})
        if self.emit is not None:
            self.emit(ev)
        self._hook(ev)
        return ev

    def _hook(self, ev: WatchEvent) -> None:
        argv = list(self.settings.watch.on_event or [])
        if not argv:
            return
        try:
            subprocess.run(argv, input=ev.to_json().encode(), timeout=HOOK_TIMEOUT, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("watch.on_event %s failed: %s", argv[0], exc)

    def step(self) -> Action:
        probe, model = deep_probe(self.address.base_url, self.model or self.settings.watch.probe_model,
                                  self.settings.watch.probe_timeout)
        if model:
            self.model = model
        decision = decide(self.state, probe, self.clock(), self.policy)
        self.state = decision.state
        action = decision.action
        if action is not Action.WAIT:
            self.waiting = False
        if action is Action.NONE and not probe.ok:
            self.event("probe-failed", decision.reason, kind_of_failure=probe.kind)
        elif action is Action.RECOVERED:
            self.event("recovered", decision.reason)
        elif action is Action.UNLOAD:
            self._unload(decision.reason)
        elif action is Action.WAIT and not self.waiting:
            self.waiting = True
            self.event("backoff", f"next restart in {decision.wait_s:.1f}s at the earliest; {decision.reason}",
                       wait_s=round(decision.wait_s, 3))
        elif action is Action.RESTART:
            self._restart(decision.reason)
        elif action is Action.GIVE_UP:
            self.event("give-up", decision.reason)
            raise Unhealthy(f"watchdog gave up on {self.address.base_url}: {decision.reason}",
                            hint="see `sollama logs` and `sollama status`; fix the cause, then restart the watch")
        return action

    def _unload(self, reason: str) -> None:
        model = self.model
        if model is None:
            self.event("unload", f"nothing to unload (no model known); {reason}")
            return
        error = None
        with _client(self.address.base_url, min(self.settings.watch.probe_timeout, 2 * QUICK_TIMEOUT)) as client:
            try:
                client.unload(model)
            except SollamaError as exc:
                error = exc.one_line()
        self.event("unload", f"unloading {model} (keep_alive 0); {reason}", model=model, error=error)

    def _restart(self, reason: str) -> None:
        from ollama_ops.services.launch import plan_launch
        from ollama_ops.services.lifecycle import restart_server

        self.event("restart", reason)
        try:
            plan = self.launch() if self.launch is not None else plan_launch(self.settings)
            result = restart_server(self.settings, plan, timeout=STOP_TIMEOUT)
        except SollamaError as exc:
            self.event("restart-failed", f"{exc.one_line()}; after: {reason}")
            return
        self.event("restarted", f"pid {result.start.pid} ready in {result.start.waited_s or 0:.2f}s; after: {reason}",
                   pid=result.start.pid, stopped=result.stop.status, stopped_pid=result.stop.pid)

    def run(self, *, max_probes: int | None = None) -> None:
        """Probe every `watch.interval` until give-up (raises Unhealthy) or `max_probes` probes."""
        w = self.settings.watch
        self.event("started", f"watching every {w.interval:g}s (probe timeout {w.probe_timeout:g}s, "
                              f"{w.failures} failures, at most {w.max_restarts} restarts an hour)")
        probes = 0
        try:
            while max_probes is None or probes < max_probes:
                self.step()
                probes += 1
                self.sleep(w.interval)
        finally:
            self.close()
