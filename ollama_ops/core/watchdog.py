"""The watchdog's decisions, pure: a probe result and the time in, the next action and state out.

Escalation: `failures` failed probes in a row → first unload the stuck model (when the daemon still holds its
port: nothing to unload on a refused connection); a failure after that → restart. Between restarts a backoff
that starts at `backoff` and doubles with every restart in the last `window` seconds, up to `backoff_max`; once
`max_restarts` restarts happened in the window and another is due, give up. A good probe ends the streak.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Action(StrEnum):
    NONE = "none"  # healthy, or a failure below the threshold
    RECOVERED = "recovered"  # the first good probe after failures
    UNLOAD = "unload"
    RESTART = "restart"
    WAIT = "wait"  # a restart is due but the backoff has not passed
    GIVE_UP = "give-up"


@dataclass(frozen=True)
class WatchPolicy:
    failures: int = 3
    backoff: float = 30.0
    backoff_max: float = 600.0
    max_restarts: int = 5
    window: float = 3600.0


@dataclass(frozen=True)
class ProbeResult:
    """`kind`: "ok", "unreachable" (nothing accepts connections), "timeout" (accepts, does not answer in time),
    or "error" (answers with an error)."""

    ok: bool
    kind: str = "ok"
    detail: str = ""


@dataclass(frozen=True)
class WatchState:
    failures: int = 0  # consecutive failed probes
    unloaded: bool = False  # the unload step was taken in this streak
    restarts: tuple[float, ...] = ()  # when restarts happened, within the window


@dataclass(frozen=True)
class Decision:
    action: Action
    state: WatchState
    reason: str
    wait_s: float = 0.0  # for WAIT: seconds until a restart is allowed


def backoff_for(restarts_in_window: int, policy: WatchPolicy) -> float:
    """The pause required after the latest of `restarts_in_window` restarts before the next one."""
    if restarts_in_window <= 0:
        return 0.0
    return min(policy.backoff_max, policy.backoff * 2 ** (restarts_in_window - 1))


def decide(state: WatchState, probe: ProbeResult, now: float, policy: WatchPolicy) -> Decision:
    """The action for this probe result."""
    recent = tuple(t for t in state.restarts if now - t < policy.window)
    if probe.ok:
        action = Action.RECOVERED if state.failures else Action.NONE
        return Decision(action, WatchState(restarts=recent), "probe ok" if not state.failures
                        else f"healthy again after {state.failures} failed probe(s)")
    failures = state.failures + 1
    state = replace(state, failures=failures, restarts=recent)
    why = f"{failures} failed probe(s) in a row: {probe.detail or probe.kind}"
    if failures < policy.failures:
        return Decision(Action.NONE, state, why)
    if not state.unloaded and probe.kind != "unreachable":
        return Decision(Action.UNLOAD, replace(state, unloaded=True), why)
    if len(recent) >= policy.max_restarts:
        return Decision(Action.GIVE_UP, state, f"{len(recent)} restart(s) in the last {policy.window:g}s reached "
                                               f"watch.max_restarts ({policy.max_restarts}); {why}")
    if recent:
        allowed_at = recent[-1] + backoff_for(len(recent), policy)
        if now < allowed_at:
            return Decision(Action.WAIT, state, why, wait_s=allowed_at - now)
    return Decision(Action.RESTART, replace(state, restarts=(*recent, now)), why)
