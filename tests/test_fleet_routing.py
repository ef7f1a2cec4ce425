"""Routing choice, host-poll parsing, the per-host breaker and the retry-once rule (pure cores)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.core.gateway.breaker import (
    CLOSED,
    OPEN,
    Breaker,
    host_failure,
    retry_once,
)
from ollama_ops.core.gateway.hoststate import host_poll, parse_ps, parse_tags, parse_version
from ollama_ops.core.gateway.routing import (
    DOWN,
    LEAST_BUSY,
    LOADED,
    MISSING,
    WAIT,
    HostView,
    choose,
    hosts_with,
    normalize_model,
    preference,
)

M = "smollm2:135m"


def host(name, slots=2, in_flight=0, up=True, installed=(M,), loaded=()):
    return HostView(name, slots, in_flight, up, frozenset(installed), frozenset(loaded))


@pytest.mark.parametrize(("raw", "expected"), [
    ("smollm2", "smollm2:latest"), ("smollm2:135m", "smollm2:135m"), ("  llama3  ", "llama3:latest"),
    ("registry.local:5000/lib/qwen", "registry.local:5000/lib/qwen:latest"),
    ("registry.local:5000/lib/qwen:7b", "registry.local:5000/lib/qwen:7b"), ("", ""),
    ("SmolLM2:135M", "smollm2:135m"), ("registry.ollama.ai/library/smollm2:latest", "smollm2:latest"),
])
def test_normalize_model(raw, expected):
    assert normalize_model(raw) == expected


@pytest.mark.parametrize(("hosts", "model", "exclude", "verdict", "chosen"), [
    # a loaded model with a free slot wins over an idler host where it would cold-load
    ([host("a", in_flight=1, loaded=(M,)), host("b")], M, (), LOADED, "a"),
    # loaded but full: the least busy host that has it installed
    ([host("a", in_flight=2, loaded=(M,)), host("b", in_flight=1), host("c")], M, (), LEAST_BUSY, "c"),
    # least busy is by in-flight / slots, not by in-flight
    ([host("a", slots=1, in_flight=0), host("b", slots=8, in_flight=1)], M, (), LEAST_BUSY, "a"),
    ([host("a", slots=2, in_flight=1), host("b", slots=8, in_flight=2)], M, (), LEAST_BUSY, "b"),
    # ties: fewer in flight, then the listed order
    ([host("a", slots=4, in_flight=2), host("b", slots=2, in_flight=1)], M, (), LEAST_BUSY, "b"),
    ([host("a"), host("b")], M, (), LEAST_BUSY, "a"),
    # a host without the model is never chosen, even when idle
    ([host("a", installed=("other:1b",)), host("b", in_flight=1)], M, (), LEAST_BUSY, "b"),
    ([host("a", installed=("other:1b",))], M, (), MISSING, None),
    # every eligible host full: wait (even though a host without the model is idle)
    ([host("a", in_flight=2), host("b", in_flight=2), host("c", installed=())], M, (), WAIT, None),
    # down hosts and excluded hosts are skipped
    ([host("a", up=False, loaded=(M,)), host("b", in_flight=1)], M, (), LEAST_BUSY, "b"),
    ([host("a", loaded=(M,)), host("b")], M, ("a",), LEAST_BUSY, "b"),
    ([host("a", up=False), host("b", up=False)], M, (), DOWN, None),
    ([host("a")], M, ("a",), DOWN, None),
    ([], M, (), DOWN, None),
    # names without a tag mean :latest on both sides
    ([host("a", installed=("llama3:latest",))], "llama3", (), LEAST_BUSY, "a"),
    # loaded but not in /api/tags (a race between the two polls) still counts as present
    ([host("a", installed=(), loaded=(M,))], M, (), LOADED, "a"),
    # a host with zero slots is always full
    ([host("a", slots=0)], M, (), WAIT, None),
])
def test_choose(hosts, model, exclude, verdict, chosen):
    choice = choose(hosts, model, exclude=exclude)
    assert (choice.verdict, choice.host) == (verdict, chosen)
    assert choice.chosen is (chosen is not None)


def test_preference_order():
    hosts = [host("full", in_flight=2, loaded=(M,)), host("idle"), host("warm", in_flight=1, loaded=(M,)),
             host("half", slots=4, in_flight=2), host("none", installed=()), host("down", up=False)]
    assert preference(hosts, M) == ["warm", "idle", "half", "full"]
    assert preference(hosts, M, exclude=["warm"]) == ["idle", "half", "full"]
    assert preference(hosts, "other") == []


def test_hosts_with():
    hosts = [host("a"), host("b", up=False), host("c", installed=()), host("d", loaded=(M,), installed=())]
    assert hosts_with(hosts, M) == ["a", "d"]


MODELS = ["m1:latest", "m2:latest", "m3:latest"]
host_views = st.builds(
    lambda i, slots, busy, up, inst, load: HostView(f"h{i}", slots, min(busy, slots + 1), up,
                                                    frozenset(inst), frozenset(load)),
    st.integers(0, 1000), st.integers(0, 4), st.integers(0, 6), st.booleans(),
    st.sets(st.sampled_from(MODELS)), st.sets(st.sampled_from(MODELS)))


@given(st.lists(host_views, max_size=6, unique_by=lambda h: h.name), st.sampled_from(MODELS),
       st.sets(st.sampled_from([f"h{i}" for i in range(10)])))
def test_choose_properties(hosts, model, exclude):
    choice = choose(hosts, model, exclude=exclude)
    order = preference(hosts, model, exclude=exclude)
    assert choice.host == (order[0] if choice.chosen else None)
    eligible = [h for h in hosts if h.up and h.name not in exclude and h.has(model)]
    free = [h for h in eligible if h.free > 0]
    if choice.chosen:
        picked = next(h for h in hosts if h.name == choice.host)
        assert picked in free  # up, not excluded, has the model, has a free slot
        warm = [h for h in free if model in h.loaded]
        pool = warm if warm else free
        assert choice.verdict == (LOADED if warm else LEAST_BUSY)
        assert picked in pool and all(picked.busy <= h.busy for h in pool)
    else:
        assert not free
        assert choice.verdict == (WAIT if eligible else MISSING if any(
            h.up and h.name not in exclude for h in hosts) else DOWN)


def test_parse_poll_answers():
    tags = {"models": [{"name": "smollm2:135m", "model": "smollm2:135m"}, {"name": "llama3"}, "junk", {"name": 3}]}
    ps = {"models": [{"name": "smollm2:135m", "size": 190_000_000, "size_vram": 0,
                      "expires_at": "2026-11-30T08:10:00Z", "context_length": 4096},
                     {"model": "qwen3:0.6b", "size": -5, "size_vram": True}, {"size": 1}, None]}
    poll = host_poll({"version": "0.23.2"}, tags, ps)
    assert poll.version == "0.23.2"
    assert poll.installed == {"smollm2:135m", "llama3:latest", "qwen3:0.6b"}  # loaded counts as installed
    assert [(m.name, m.size, m.size_vram, m.expires_at, m.context_length) for m in poll.loaded] == [
        ("qwen3:0.6b", 0, 0, "", 0), ("smollm2:135m", 190_000_000, 0, "2026-11-30T08:10:00Z", 4096)]
    assert poll.loaded_names == {"smollm2:135m", "qwen3:0.6b"}


@pytest.mark.parametrize("payload", [None, [], "x", {"models": None}, {"models": "x"}, {}])
def test_parse_poll_odd_answers_are_empty(payload):
    assert parse_tags(payload) == frozenset()
    assert parse_ps(payload) == ()
    assert parse_version(payload) == ""


@pytest.mark.parametrize(("status", "error", "counts"), [
    (502, None, True), (503, None, True), (500, None, False), (404, None, False), (400, None, False),
    (200, None, False), (None, "refused", True), (None, "connect-timeout", True),
    (None, "first-byte-timeout", True), (None, "reset", True), (None, "idle-timeout", False),
])
def test_host_failure(status, error, counts):
    assert host_failure(status, error) is counts


@pytest.mark.parametrize(("attempt", "sent", "status", "error", "retry"), [
    (1, False, None, "refused", True), (1, False, 503, None, True), (1, False, 502, None, True),
    (1, False, None, "first-byte-timeout", True),
    (1, True, None, "reset", False),  # after the first byte: never replayed
    (2, False, None, "refused", False),  # only once
    (1, False, 500, None, False), (1, False, 404, None, False),
])
def test_retry_once(attempt, sent, status, error, retry):
    assert retry_once(attempt, sent, status, error) is retry


def test_breaker_ejects_probes_and_backs_off():
    b = Breaker(threshold=2, cooldown=2.0, max_cooldown=5.0)
    assert b.allow() and b.state == CLOSED
    assert b.failure(10.0) is False and b.allow()  # one failure under a threshold of 2
    b.success()
    assert b.failures == 0
    assert b.failure(11.0) is False
    assert b.failure(11.5) is True and b.state == OPEN and not b.allow() and b.ejections == 1
    assert not b.probe_due(13.4) and b.retry_in(13.0) == pytest.approx(0.5)
    assert b.failure(12.0) is False  # more request failures while out change nothing
    assert b.probe_due(13.5)
    assert b.failure(13.5) is True and b.current_cooldown == 4.0  # failed probe: doubled
    assert not b.probe_due(17.4) and b.probe_due(17.5)
    assert b.failure(17.5) and b.current_cooldown == 5.0  # capped
    assert b.failure(22.5) and b.current_cooldown == 5.0
    b.success()
    assert b.allow() and b.state == CLOSED and b.current_cooldown == 2.0 and b.retry_in(30.0) == 0.0
    assert b.failure(40.0) is False and b.failure(40.1) is True and b.ejections == 2


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"cooldown": 0}, {"cooldown": 5, "max_cooldown": 1}])
def test_breaker_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Breaker(**kwargs)


@given(st.lists(st.tuples(st.sampled_from(["fail", "ok"]), st.floats(0, 3)), max_size=40),
       st.integers(1, 3))
def test_breaker_properties(events, threshold):
    b, now = Breaker(threshold=threshold, cooldown=1.0, max_cooldown=8.0), 0.0
    streak = 0
    for kind, dt in events:
        now += dt
        if kind == "ok":
            b.success()
            streak = 0
        else:
            was_closed = b.state == CLOSED
            b.failure(now)
            streak = streak + 1 if was_closed else streak
            if was_closed:
                assert (b.state == OPEN) is (streak >= threshold)
        assert b.allow() is (b.state == CLOSED)
        assert 1.0 <= b.current_cooldown <= 8.0


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@10.0.0.1:6379/0", "redis://10.0.0.1:6379/0"),
    ("postgresql://sollama:pw@db:5432/sollama", "postgresql://sollama@db:5432/sollama"),
    ("postgresql://sollama@db/sollama", "postgresql://sollama@db/sollama"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"), (None, None), ("", ""),
])
def test_redact_drops_passwords(url, shown):
    from ollama_ops.fleet.admin import redact

    assert redact(url) == shown
