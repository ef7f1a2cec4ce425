"""Worker processes for the fleet tests (run as `python -m tests.fleet_workers KIND JSON-ARGS`): each prints one
JSON line with what it observed. Separate processes, so shared state really goes through Redis."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time


async def hammer_slots(url: str, host: str, slots: int, workers: int, rounds: int, ttl: float) -> dict:
    """`workers` tasks each take a slot `rounds` times; while holding it they count themselves in a separate Redis
    counter and note the highest value seen (which must never pass `slots`)."""
    import redis.asyncio as aioredis

    from ollama_ops.fleet.slots import RedisSlots

    pool = RedisSlots(url, ttl=ttl)
    check = aioredis.Redis.from_url(url)
    peak, taken, refused = 0, 0, 0

    async def worker() -> None:
        nonlocal peak, taken, refused
        done = 0
        deadline = time.monotonic() + 120
        while done < rounds and time.monotonic() < deadline:
            lease, counts = await pool.try_acquire([(host, slots)])
            assert counts[host] <= slots, counts
            if lease is None:
                refused += 1
                await asyncio.sleep(random.uniform(0, 0.002))
                continue
            try:
                peak = max(peak, int(await check.incr("check:" + host)))
                await asyncio.sleep(random.uniform(0, 0.003))
                await check.decr("check:" + host)
            finally:
                await pool.release(lease)
            taken += 1
            done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    await pool.close()
    await check.aclose()
    return {"peak": peak, "taken": taken, "refused": refused}


async def hold_slots(url: str, host: str, slots: int, count: int, ttl: float) -> dict:
    """Take `count` leases, say so, then hold them (renewing) until killed."""
    from ollama_ops.fleet.slots import RedisSlots

    pool = RedisSlots(url, ttl=ttl)
    leases = []
    for _ in range(count):
        lease, _ = await pool.try_acquire([(host, slots)])
        leases.append(lease is not None)
    print(json.dumps({"held": sum(leases)}), flush=True)
    await asyncio.sleep(600)
    return {}


def hit_limit(url: str, name: str, per_minute: int, hits: int) -> dict:
    """Hit one per-minute fixed window `hits` times through the `limits` Redis storage; count what was allowed."""
    from limits import RateLimitItemPerMinute
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    limiter = FixedWindowRateLimiter(storage_from_string(url))
    item = RateLimitItemPerMinute(per_minute)
    allowed = sum(1 for _ in range(hits) if limiter.hit(item, "rpm", name))
    return {"allowed": allowed}


def usage_then_die(dsn: str, rows: int) -> dict:
    """Write `rows` usage rows through the batched sink, wait until they are in PostgreSQL, say so, and wait to be
    killed."""
    from ollama_ops.edges.store import UsageRow
    from ollama_ops.fleet.pgstore import PgUsageSink

    sink = PgUsageSink(dsn, batch=64, interval=0.1)
    for i in range(rows):
        sink.add(UsageRow(time=1000.0 + i, command="gateway", model="smollm2:135m", eval_tokens=i))
    deadline = time.monotonic() + 60
    while sink.written < rows and time.monotonic() < deadline:
        time.sleep(0.02)
    print(json.dumps({"written": sink.written, "batches": sink.batches}), flush=True)
    time.sleep(600)
    return {}


def main() -> None:
    kind, args = sys.argv[1], json.loads(sys.argv[2])
    if kind == "hammer":
        out = asyncio.run(hammer_slots(**args))
    elif kind == "hold":
        out = asyncio.run(hold_slots(**args))
    elif kind == "usage":
        out = usage_then_die(**args)
    elif kind == "limit":
        out = hit_limit(**args)
    else:
        raise SystemExit(f"unknown worker {kind!r}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
