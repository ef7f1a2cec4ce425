"""The shared limiter on a real Redis: the same windows as the in-process one, counted across instances, with the
RateLimit-* figures right."""

from __future__ import annotations

import asyncio

from ollama_ops.core.gateway.keys import KeyRecord
from ollama_ops.fleet.limits import SharedLimiter


def key(**limits) -> KeyRecord:
    return KeyRecord(name="team-a", hash="h", hint="x", created=0.0, **limits)


def test_rpm_window_is_shared_and_exact(redis_url):
    async def run():
        a, b = SharedLimiter(redis_url), SharedLimiter(redis_url)  # two replicas
        k = key(rpm=5)
        outcomes = []
        for i in range(8):
            refusal, verdict = await (a if i % 2 else b).admit_async(k)
            outcomes.append(("refused" if refusal else "ok", (refusal or verdict).remaining))
        assert outcomes == [("ok", 4), ("ok", 3), ("ok", 2), ("ok", 1), ("ok", 0),
                            ("refused", -1), ("refused", -2), ("refused", -3)]
        refusal, _ = await a.admit_async(k)
        assert 55 <= refusal.reset_s <= 60 and refusal.headers()["Retry-After"] in {str(s) for s in range(55, 61)}
        assert a.active("team-a") + b.active("team-a") == 5  # concurrency stays per replica

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


def test_concurrency_is_per_instance(redis_url):
    async def run():
        a = SharedLimiter(redis_url)
        k = key(concurrency=1)
        assert (await a.admit_async(k))[0] is None
        refusal, _ = await a.admit_async(k)
        assert refusal is not None and refusal.name == "concurrency"
        a.release(k)
        assert (await a.admit_async(k))[0] is None

    asyncio.run(run())
