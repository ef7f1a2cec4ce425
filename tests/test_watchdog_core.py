"""core.watchdog.decide: probe results in, the escalation (unload, restart), the doubling backoff and the give-up
out; pure, no clock, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ollama_ops.core.watchdog import Action, ProbeResult, WatchPolicy, WatchState, backoff_for, decide

OK = ProbeResult(True)
HUNG = ProbeResult(False, "timeout", "no answer within 5s")
DOWN = ProbeResult(False, "unreachable", "connection refused")
POLICY = WatchPolicy(failures=3, backoff=30, backoff_max=600, max_restarts=3, window=3600)


def run(probes: list[ProbeResult], times: list[float], policy: WatchPolicy = POLICY) -> list[Action]:
    state, actions = WatchState(), []
    for probe, now in zip(probes, times, strict=True):
        d = decide(state, probe, now, policy)
        state = d.state
        actions.append(d.action)
    return actions


def test_hung_daemon_is_unloaded_then_restarted():
    assert run([HUNG] * 5, [0, 15, 30, 45, 60]) == [Action.NONE, Action.NONE, Action.UNLOAD, Action.RESTART,
                                                     Action.WAIT]


def test_a_refused_connection_skips_the_unload():
    assert run([DOWN] * 3, [0, 1, 2]) == [Action.NONE, Action.NONE, Action.RESTART]


def test_a_good_probe_ends_the_streak_and_unload_may_come_again():
    actions = run([HUNG, HUNG, HUNG, OK, HUNG, HUNG, HUNG], [0, 1, 2, 3, 4, 5, 6])
    assert actions == [Action.NONE, Action.NONE, Action.UNLOAD, Action.RECOVERED, Action.NONE, Action.NONE,
                       Action.UNLOAD]


@pytest.mark.parametrize("n, expected", [(0, 0), (1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (20, 600)])
def test_backoff_doubles_up_to_the_cap(n, expected):
    assert backoff_for(n, POLICY) == expected


def test_restarts_wait_for_the_backoff_then_give_up():
    policy = WatchPolicy(failures=1, backoff=30, backoff_max=600, max_restarts=3)
    times = [0, 10, 30, 40, 89, 90, 200, 210]
    assert run([DOWN] * len(times), times, policy) == [
        Action.RESTART,  # t=0
        Action.WAIT, Action.RESTART,  # 30 s after the first
        Action.WAIT, Action.WAIT, Action.RESTART,  # 60 s after the second
        Action.GIVE_UP, Action.GIVE_UP]  # three restarts in the hour: no fourth


def test_restarts_older_than_the_window_do_not_count():
    policy = WatchPolicy(failures=1, backoff=1, backoff_max=1, max_restarts=2, window=100)
    assert run([DOWN] * 4, [0, 10, 20, 200], policy) == [Action.RESTART, Action.RESTART, Action.GIVE_UP,
                                                          Action.RESTART]


def test_decision_says_why():
    d = decide(WatchState(failures=2), HUNG, 0, POLICY)
    assert d.action is Action.UNLOAD and d.reason == "3 failed probe(s) in a row: no answer within 5s"
    give_up = decide(WatchState(failures=9, unloaded=True, restarts=(1, 2, 3)), DOWN, 10, POLICY)
    assert give_up.action is Action.GIVE_UP and "reached watch.max_restarts (3)" in give_up.reason
    wait = decide(WatchState(failures=9, unloaded=True, restarts=(100,)), DOWN, 110, POLICY)
    assert wait.action is Action.WAIT and wait.wait_s == 20


probes = st.lists(st.sampled_from([OK, HUNG, DOWN, ProbeResult(False, "error", "500")]), min_size=1, max_size=60)


@settings(max_examples=120, deadline=None)
@given(probes, st.lists(st.floats(0, 400), min_size=60, max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_invariants(results, gaps, failures, max_restarts):
    policy = WatchPolicy(failures=failures, backoff=30, backoff_max=600, max_restarts=max_restarts)
    state, now, streak = WatchState(), 0.0, 0
    for probe, gap in zip(results, gaps, strict=False):
        now += gap
        d = decide(state, probe, now, policy)
        streak = 0 if probe.ok else streak + 1
        assert d.state.failures == streak
        if probe.ok:
            assert d.action in (Action.NONE, Action.RECOVERED) and not d.state.unloaded
        if d.action in (Action.UNLOAD, Action.RESTART, Action.GIVE_UP, Action.WAIT):
            assert streak >= failures  # never acts before the threshold
        if d.action is Action.RESTART:
            assert d.state.restarts[-1] == now and len(d.state.restarts) <= max_restarts
            earlier = d.state.restarts[:-1]
            assert not earlier or now - earlier[-1] >= backoff_for(len(earlier), policy)
        if d.action is Action.GIVE_UP:
            assert len(d.state.restarts) >= max_restarts
        assert all(now - t < policy.window for t in d.state.restarts)
        state = d.state
