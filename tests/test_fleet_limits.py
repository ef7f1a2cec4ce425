"""The shared limiter on a real Redis: the same windows as the in-process one and the same concurrency count,
counted across instances (each one a replica's limiter), with the RateLimit-* figures right."""

from __future__ import annotations

import asyncio
import time

import pytest

from ollama_ops.core.gateway.keys import KeyRecord
from ollama_ops.fleet.limits import SharedLimiter


def key(**limits) -> KeyRecord:
    return KeyRecord(name="team-a", hash="h", hint="x", created=0.0, **limits)


def test_rpm_window_is_shared_and_exact(redis_url):
    async def run():
        a, b = SharedLimiter(redis_url), SharedLimiter(redis_url)  # two replicas
        k = key(rpm=5)
        outcomes = []
        first_hit = time.time()  # the window opens at the first hit: its end lies between this + 60 s and now + 60 s
        for i in range(8):
            refusal, verdict = await (a if i % 2 else b).admit_async(k)
            outcomes.append(("refused" if refusal else "ok", (refusal or verdict).remaining))
        assert outcomes == [("ok", 4), ("ok", 3), ("ok", 2), ("ok", 1), ("ok", 0),
                            ("refused", -1), ("refused", -2), ("refused", -3)]
        refusal, _ = await a.admit_async(k)
        # whole seconds either way (Redis TTLs, Retry-After), so one second of slack on each side
        assert first_hit + 60 - 1 <= time.time() + refusal.reset_s <= time.time() + 60 + 1
        assert int(refusal.headers()["Retry-After"]) == pytest.approx(refusal.reset_s, abs=1)
        assert a.active("team-a") + b.active("team-a") == 5  # each counts the requests it admitted
        # the window is the `limits` library's own counter: its storage reads the 9 hits (refused ones count too)
        item = a._item("rpm", 5)
        assert await a.aio.get(item.key_for("rpm", "team-a")) == 9
        assert first_hit + 60 - 1 <= await a.aio.get_expiry(item.key_for("rpm", "team-a")) <= time.time() + 60 + 1
        await a.close()
        await b.close()

    asyncio.run(run())


def test_token_windows_are_charged_and_checked(redis_url):
    async def run():
        a, b = SharedLimiter(redis_url), SharedLimiter(redis_url)
        k = key(tpm=100, daily_tokens=1000, concurrency=2)
        refusal, verdict = await a.admit_async(k)
        assert refusal is None and verdict.name in {"concurrency", "tpm", "daily_tokens"}
        a.release(k)
        a.charge(k, 150)
        await asyncio.gather(*a._pending)
        refusal, _ = await b.admit_async(k)  # the other replica sees the tokens
        assert refusal is not None and refusal.name == "tpm" and refusal.remaining == -50
        assert a.errors == 0

    asyncio.run(run())


def test_concurrency_is_shared_and_a_refusal_counts_nothing(redis_url):
    async def run():
        a, b = SharedLimiter(redis_url), SharedLimiter(redis_url)  # two replicas
        k = key(concurrency=2, rpm=100)
        assert (await a.admit_async(k))[0] is None
        refusal, verdict = await b.admit_async(k)
        assert refusal is None and (verdict.name, verdict.remaining) == ("concurrency", 0)
        for limiter in (a, b):  # two in flight, one on each replica: both refuse a third
            refusal, _ = await limiter.admit_async(k)
            assert (refusal.name, refusal.limit, refusal.remaining) == ("concurrency", 2, -1)
            assert refusal.headers()["Retry-After"] == "1"
        rpm_key = a._item("rpm", 100).key_for("rpm", "team-a")
        assert await a.aio.get(rpm_key) == 2  # the refused requests were not counted in the rpm window
        b.release(k)  # the request on b ended: a gets the slot
        refusal, verdict = await a.admit_async(k)
        assert refusal is None and verdict.remaining == 0
        a.release(k)
        a.release(k)
        a.release(k)  # one release too many: nothing to give back, nothing breaks
        await asyncio.gather(*(x.batch.close() for x in (a, b)))
        assert await a.redis.zcard(a.concurrency_key("team-a")) == 0
        assert (a.errors, b.errors, a.active("team-a"), b.active("team-a")) == (0, 0, 0, 0)
        await a.close()
        await b.close()

    asyncio.run(run())


def test_a_dead_replicas_concurrency_leases_expire_and_live_ones_are_renewed(redis_url):
    async def run():
        live = SharedLimiter(redis_url, lease_ttl=1.0)
        dead = SharedLimiter(redis_url, lease_ttl=1.0)
        k = key(concurrency=2)
        assert (await live.admit_async(k))[0] is None
        assert (await dead.admit_async(k))[0] is None
        await dead.leases.close()  # it stops renewing, as a killed replica does; its lease is never released
        dead.leases.held.clear()
        killed = time.monotonic()
        seen = []
        deadline = killed + 30
        while time.monotonic() < deadline:
            refusal, _ = await live.admit_async(k)
            seen.append(refusal is None)
            if refusal is None:
                break
            await asyncio.sleep(0.05)
        freed_after = time.monotonic() - killed
        assert seen[0] is False and seen[-1] is True  # held at first, then it expired (not dropped early)
        # the live replica's first lease is 3+ ttl old by now and still counts: renewed in the background
        await asyncio.sleep(2.5)
        refusal, _ = await live.admit_async(k)
        assert refusal is not None and refusal.name == "concurrency"
        assert live.leases.renew_errors == 0
        print(f"\nthe dead replica's concurrency lease came back {freed_after:.2f} s after it stopped (ttl 1 s)")
        await live.close()
        await dead.redis.aclose()

    asyncio.run(run())


def test_a_caller_cancelled_mid_decision_gives_its_lease_back(redis_url):
    async def run():
        a = SharedLimiter(redis_url)
        k = key(concurrency=1)
        task = asyncio.ensure_future(a.admit_async(k))
        await asyncio.sleep(0)  # the script is queued for this tick's pipeline
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await a.batch.close()  # the script ran (it took the lease), then the release went out
        await a.batch.close()
        assert task.cancelled()
        assert a.batch.calls == 2  # the decision ran and took the lease; the release followed it
        assert await a.redis.zcard(a.concurrency_key("team-a")) == 0
        assert a.active("team-a") == 0 and not a.leases.held
        assert (await a.admit_async(k))[0] is None
        await a.close()

    asyncio.run(run())


def test_no_limits_means_no_round_trip(redis_url):
    async def run():
        a = SharedLimiter(redis_url)
        assert await a.admit_async(key()) == (None, None)
        assert a.batch.calls == 0 and a.active("team-a") == 1
        a.release(key())
        await a.close()

    asyncio.run(run())
