"""Per-key limits on the `limits` windows with an injected clock (exact counts at the window edges), and the
admission slots and fair queue driven on an event loop (no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from ollama_ops.core.gateway.keys import KeyRecord
from ollama_ops.gateway.admission import Admission, Draining, QueueFull, WaitExpired
from ollama_ops.gateway.limiter import ClockStorage, Limiter


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _key(**kw) -> KeyRecord:
    return KeyRecord(name=kw.pop("name", "k"), hash="h", hint="xxxx", created=0, **kw)


def _limiter() -> tuple[Limiter, Clock]:
    clock = Clock()
    return Limiter(ClockStorage(clock)), clock


def test_rpm_exact_at_the_window_edge():
    limiter, clock = _limiter()
    key = _key(rpm=3)
    for i in range(3):
        refusal, verdict = limiter.admit(key)
        assert refusal is None and verdict.remaining == 2 - i
        limiter.release(key)
    refusal, _ = limiter.admit(key)
    assert refusal is not None and refusal.name == "rpm" and refusal.headers()["Retry-After"] == "60"
    clock.t += 59.999
    refusal, _ = limiter.admit(key)
    assert refusal is not None and refusal.headers()["Retry-After"] == "1"
    clock.t += 0.001  # exactly one minute after the first hit: a new window
    refusal, verdict = limiter.admit(key)
    assert refusal is None and verdict.remaining == 2


def test_refused_requests_do_not_count():
    limiter, clock = _limiter()
    key = _key(rpm=1)
    assert limiter.admit(key)[0] is None
    for _ in range(5):
        assert limiter.admit(key)[0] is not None
    clock.t += 60
    assert limiter.admit(key)[0] is None


def test_tpm_is_charged_after_the_fact_and_refuses_until_reset():
    limiter, clock = _limiter()
    key = _key(tpm=100)
    assert limiter.admit(key)[0] is None
    limiter.charge(key, 60)
    limiter.release(key)
    refusal, verdict = limiter.admit(key)  # 60 used < 100: allowed
    assert refusal is None and verdict.remaining == 40
    limiter.charge(key, 60)  # 120: over
    limiter.release(key)
    refusal, _ = limiter.admit(key)
    assert refusal is not None and refusal.name == "tpm" and refusal.headers()["RateLimit-Remaining"] == "0"
    clock.t += 60
    assert limiter.admit(key)[0] is None


def test_daily_tokens_window():
    limiter, clock = _limiter()
    key = _key(daily_tokens=1000)
    assert limiter.admit(key)[0] is None
    limiter.charge(key, 1000)
    limiter.release(key)
    clock.t += 86399
    refusal, _ = limiter.admit(key)
    assert refusal is not None and refusal.name == "daily_tokens" and refusal.headers()["Retry-After"] == "1"
    clock.t += 1
    assert limiter.admit(key)[0] is None


def test_concurrency_is_a_lease():
    limiter, _ = _limiter()
    key = _key(concurrency=2)
    assert limiter.admit(key)[0] is None and limiter.admit(key)[0] is None
    refusal, _ = limiter.admit(key)
    assert refusal is not None and refusal.name == "concurrency"
    limiter.release(key)
    assert limiter.admit(key)[0] is None and limiter.active("k") == 2


def test_same_numbers_for_rpm_and_tpm_do_not_share_a_counter():
    limiter, _ = _limiter()
    key = _key(rpm=5, tpm=5)
    assert limiter.admit(key)[0] is None  # one request, counted by rpm only
    limiter.release(key)
    _, verdict = limiter.admit(key)
    assert verdict.name == "rpm" and verdict.remaining == 3


def test_keys_are_independent():
    limiter, _ = _limiter()
    a, b = _key(name="a", rpm=1), _key(name="b", rpm=1)
    assert limiter.admit(a)[0] is None and limiter.admit(a)[0] is not None
    assert limiter.admit(b)[0] is None


# -- admission ------------------------------------------------------------------------------------------------------

def _run(coro):
    return asyncio.run(coro)


def test_slots_then_fair_queue_order():
    async def scenario():
        adm = Admission(slots=1, depth=100, max_wait=30)
        served: list[str] = []

        async def req(key, tag):
            await adm.acquire(key, 1)
            served.append(tag)
            await asyncio.sleep(0)
            adm.release()

        assert adm.try_acquire()  # hold the slot while the queue fills
        tasks = [asyncio.create_task(req("A", f"A{i}")) for i in range(5)]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(req("B", "B0")))
        await asyncio.sleep(0)
        assert adm.queued == 6
        adm.release()
        await asyncio.gather(*tasks)
        return served, adm

    served, adm = _run(scenario())
    assert served[:2] == ["A0", "B0"] and served[2:] == ["A1", "A2", "A3", "A4"]
    assert adm.in_flight == 0 and adm.queued == 0


def test_queue_full_and_max_wait():
    async def scenario():
        adm = Admission(slots=1, depth=1, max_wait=0.05)
        assert adm.try_acquire()
        waiting = asyncio.create_task(adm.acquire("A", 1))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await adm.acquire("B", 1)
        with pytest.raises(WaitExpired):
            await waiting
        return adm

    adm = _run(scenario())
    assert adm.queued == 0 and adm.in_flight == 1


def test_cancelled_waiter_leaves_the_queue_and_a_handed_slot_passes_on():
    async def scenario():
        adm = Admission(slots=1, depth=10, max_wait=30)
        assert adm.try_acquire()
        gone = asyncio.create_task(adm.acquire("A", 1))
        stays = asyncio.create_task(adm.acquire("B", 1))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        assert adm.queued == 1
        adm.release()
        await stays
        assert adm.in_flight == 1
        # a slot handed to a waiter that is cancelled before it runs goes to the next one
        third = asyncio.create_task(adm.acquire("C", 1))
        fourth = asyncio.create_task(adm.acquire("D", 1))
        await asyncio.sleep(0)
        adm.release()  # third gets it...
        third.cancel()  # ...but leaves before running
        await asyncio.sleep(0)
        await fourth
        return adm

    adm = _run(scenario())
    assert adm.in_flight == 1 and adm.queued == 0


def test_drain_refuses_waiters_and_newcomers():
    async def scenario():
        adm = Admission(slots=1, depth=10, max_wait=30)
        assert adm.try_acquire()
        waiters = [asyncio.create_task(adm.acquire("A", 1)) for _ in range(3)]
        await asyncio.sleep(0)
        assert adm.drain() == 3
        results = await asyncio.gather(*waiters, return_exceptions=True)
        with pytest.raises(Draining):
            adm.try_acquire()
        return results

    assert all(isinstance(r, Draining) for r in _run(scenario()))


def test_snapshot_lists_the_serving_order_without_changing_it():
    async def scenario():
        adm = Admission(slots=1, depth=10, max_wait=30)
        assert adm.try_acquire()
        tasks = [asyncio.create_task(adm.acquire(k, 1, request_id=f"{k}{i}")) for i, k in enumerate("AAAB")]
        await asyncio.sleep(0)
        snap = [(pos, w.request_id) for pos, w in adm.snapshot()]
        assert adm.queued == 4
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return snap

    assert _run(scenario()) == [(1, "A0"), (2, "B3"), (3, "A1"), (4, "A2")]
