"""The fleet's performance figures (not a test; prints figures and ratios from one run):

1. Scaling: saturated throughput through one gateway replica over two stub hosts vs one (scripted service time:
   8 tokens 20 ms apart, 2 slots a host). Goal: ratio >= 1.9x.
2. Shared state costs little: TTFT median through a replica with `gateway.state: redis://` vs in-process state
   (same single stub host, same key with an rpm limit, sequential requests). Goal: <= 1 ms added.
3. Admission decisions per second with Redis state in one process (one replica): the key's limits (one Lua script:
   the rpm window on the `limits` library's keys, the key's shared concurrency lease) and a slot lease (one Lua
   script), 32 concurrent callers, every call auto-pipelined with the others of its loop tick; also with the
   leases given back (a whole request's Redis work), and, for comparison, one call per round trip. Goal:
   >= 5,000/s.
4. Scaling with real daemons (`--only real`; also in a full run when the Ollama binary is there): saturated
   throughput through one replica over two real `ollama serve` with SmolLM2 vs one of them (1 slot a host, as
   OLLAMA_NUM_PARALLEL=1), each load run for a fixed time; each daemon pinned to a core of its own with one
   thread (num_thread 1), as two hosts would each bring their own hardware. No goal.

    .venv/bin/python benchmarks/fleet_scaling.py [--requests 240] [--concurrency 16] [--only decisions]
    .venv/bin/python benchmarks/fleet_scaling.py --only real [--real-seconds 30] [--real-tokens 16]

It starts its own redis-server (Debian package) on a free loopback port, stub hosts and gateway replicas as
separate processes, and stops each by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._stub import stub_process  # noqa: E402
from tests.fleet_helpers import replica, upstreams  # noqa: E402
from tests.services_fixtures import start_redis  # noqa: E402

MODEL = "stub-model:latest"


async def _load(url: str, n: int, concurrency: int, key: str | None) -> tuple[float, list[float], int]:
    """`n` streamed generates at `concurrency`; (wall seconds, TTFTs, failures)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    ttfts: list[float] = []
    failures = 0
    queue = iter(range(n))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for _ in queue:
            t0 = time.perf_counter()
            async with session.post(url + "/api/generate", json={"model": MODEL, "prompt": "hi"},
                                    headers=headers) as resp:
                first = None
                async for _chunk in resp.content.iter_any():
                    if first is None:
                        first = time.perf_counter() - t0
                if resp.status != 200:
                    failures += 1
                elif first is not None:
                    ttfts.append(first)

    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - t0, ttfts, failures


def make_key(home: Path, rpm: int) -> str:
    from tests.gateway_helpers import make_key as make

    return make(home, "bench", "--rpm", str(rpm))


def scaling(args, home: Path) -> float:
    script = ["--tokens", "8", "--token-delay", "0.02"]
    with stub_process(*script) as (_, p1), stub_process(*script) as (_, p2):
        hosts = [(f"http://127.0.0.1:{p1}", 2), (f"http://127.0.0.1:{p2}", 2)]
        rates = {}
        for label, chosen in (("one host", hosts[:1]), ("two hosts", hosts)):
            with replica(home, upstreams=upstreams(*chosen), queue_depth=10_000) as gw:
                asyncio.run(_load(gw.url, 8, 4, None))  # warm-up
                wall, _, failed = asyncio.run(_load(gw.url, args.requests, args.concurrency, None))
                rates[label] = (args.requests - failed) / wall
                print(f"  {label}: {rates[label]:.1f} req/s ({args.requests} requests, concurrency "
                      f"{args.concurrency}, {failed} failed)")
    ratio = rates["two hosts"] / rates["one host"]
    print(f"scaling: two stub hosts / one = {ratio:.2f}x (goal >= 1.9x)")
    return ratio


def state_cost(args, home: Path, redis_url: str) -> float:
    key = make_key(home, 1_000_000)
    with stub_process() as (_, port):
        host = upstreams((f"http://127.0.0.1:{port}", 4))
        medians = {}
        with replica(home, upstreams=host) as local, replica(home, upstreams=host, state=redis_url) as shared:
            for gw in (local, shared):
                asyncio.run(_load(gw.url, 30, 1, key))  # warm-up
            samples: dict[str, list[float]] = {"in-process": [], "redis": []}
            for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both
                for label, gw in (("in-process", local), ("redis", shared)):
                    samples[label] += asyncio.run(_load(gw.url, 50, 1, key))[1]
            for label, values in samples.items():
                medians[label] = statistics.median(values)
                print(f"  TTFT median {label}: {medians[label] * 1000:.3f} ms over {len(values)} requests")
    added = (medians["redis"] - medians["in-process"]) * 1000
    print(f"shared state: added TTFT median with Redis = {added:.3f} ms (goal <= 1 ms)")
    return added


async def _timed_load(url: str, seconds: float, concurrency: int, body: dict) -> tuple[float, int, int, int]:
    """Streamed generates from `concurrency` callers until `seconds` have passed (each finishes the request it
    is in); (wall seconds to the last answer, requests done, failures, output tokens from `eval_count`)."""
    import json

    import aiohttp

    done = failed = tokens = 0
    stop = time.perf_counter() + seconds

    async def caller(session: aiohttp.ClientSession) -> None:
        nonlocal done, failed, tokens
        while time.perf_counter() < stop:
            async with session.post(url + "/api/generate", json=body) as resp:
                raw = await resp.read()
            last = raw.rstrip().rsplit(b"\n", 1)[-1]
            if resp.status != 200 or b'"done":true' not in last:
                failed += 1
                continue
            done += 1
            tokens += int(json.loads(last).get("eval_count") or 0)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(caller(session) for _ in range(concurrency)))
        return time.perf_counter() - t0, done, failed, tokens


def real_scaling(args, home: Path) -> float | None:
    """Two real daemons (this script's own, on free loopback ports, stopped by their PIDs) vs one of them."""
    from tests.conftest import TEST_MODEL, TOOLS, ensure_test_model, ollama_binary, start_ollama, stop_process

    binary = ollama_binary()
    if binary is None:
        print("real daemons: skipped (no ollama binary: make ollama model)")
        return None
    # Each daemon gets one core of its own (CPU affinity, inherited by its runner) and one thread: two llama.cpp
    # runners each spinning a thread per core on a shared pair of cores thrash (measured 0.04x unpinned), which is
    # not what two hosts are. The one-host baseline is pinned the same way, so the ratio compares 1 core to 2.
    cores = sorted(os.sched_getaffinity(0))
    body = {"model": TEST_MODEL, "prompt": "Count from one to twenty.",
            "options": {"num_predict": args.real_tokens, "seed": 1, "temperature": 0, "num_thread": 1}}
    procs = []
    rates: dict[str, float] = {}
    try:
        urls = []
        for i in (1, 2):
            proc, host = start_ollama(binary, TOOLS / "test-ollama-models", home / f"ollama-{i}",
                                      home / f"ollama-{i}.log")
            procs.append(proc)
            if len(cores) >= 2:
                os.sched_setaffinity(proc.pid, {cores[i - 1]})
            urls.append(f"http://{host}")
        ensure_test_model(urls[0])
        for url in urls:  # SmolLM2 loaded on both, outside the measured runs
            asyncio.run(_timed_load(url, 0, 1, {**body, "options": {**body["options"], "num_predict": 1}}))
        for label, chosen in (("one real host", urls[:1]), ("two real hosts", urls)):
            with replica(home, upstreams=upstreams(*((u, 1) for u in chosen)), queue_depth=10_000) as gw:
                asyncio.run(_timed_load(gw.url, 0, len(chosen), body))  # a first request through each host
                wall, done, failed, tokens = asyncio.run(_timed_load(gw.url, args.real_seconds,
                                                                     args.real_concurrency, body))
                rates[label] = done / wall
                print(f"  {label}: {rates[label]:.2f} req/s, {tokens / wall:.1f} output tokens/s ({done} requests "
                      f"of {args.real_tokens} tokens in {wall:.1f} s, concurrency {args.real_concurrency}, "
                      f"{failed} failed)")
    finally:
        for proc in procs:
            stop_process(proc)
    ratio = rates["two real hosts"] / rates["one real host"] if rates.get("one real host") else 0.0
    pinned = "each daemon pinned to one core, 1 thread" if len(cores) >= 2 else "one core: not pinned"
    print(f"scaling: two real daemons / one = {ratio:.2f}x ({pinned}; load average {os.getloadavg()[0]:.2f})")
    return ratio


async def _decisions(redis_url: str, seconds: float, concurrency: int, cycle: bool,
                     batched: bool = True) -> tuple[int, float, float]:
    """What a replica does to admit a request with Redis state: the key's limits (the gateway's shared limiter:
    rpm window + concurrency lease, one script) and a slot lease (one script). With `cycle`, both leases are also
    given back, as when the request ends. Without `batched`, every call is its own round trip (how it was before
    the auto-pipelining). Returns (decisions, wall seconds, calls per round trip)."""
    from ollama_ops.core.gateway.keys import KeyRecord
    from ollama_ops.fleet.batch import ScriptBatch
    from ollama_ops.fleet.limits import SharedLimiter
    from ollama_ops.fleet.slots import RedisSlots

    slots = RedisSlots(redis_url, ttl=60.0)
    limiter = SharedLimiter(redis_url, lease_ttl=60.0)
    if not batched:
        for owner in (slots, limiter):
            owner.batch = owner.leases.batch = _Unbatched(owner.redis)
    keys = [KeyRecord(name=f"key-{i}", hash="x", hint="x", created=0.0, rpm=10**9, concurrency=10**9)
            for i in range(4)]
    hosts = [("http://h1", 10**9), ("http://h2", 10**9)]
    done = 0
    stop = time.perf_counter() + seconds

    async def caller(i: int) -> None:
        nonlocal done
        key = keys[i % len(keys)]
        while time.perf_counter() < stop:
            refusal, _ = await limiter.admit_async(key)
            assert refusal is None, refusal
            lease, _ = await slots.try_acquire(hosts)
            assert lease is not None
            if cycle:
                limiter.release(key)
                await slots.release(lease)
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    wall = time.perf_counter() - t0
    batches = [b for b in (slots.batch, limiter.batch) if isinstance(b, ScriptBatch)]
    per_trip = sum(b.calls for b in batches) / max(1, sum(b.round_trips for b in batches)) if batches else 1.0
    for owner in (slots, limiter):
        owner.leases.held.clear()
    await slots.redis.delete(*(slots.key(h) for h, _ in hosts), *(limiter.concurrency_key(k.name) for k in keys))
    await limiter.close()
    await slots.close()
    return done, wall, per_trip


class _Unbatched:
    """A ScriptBatch stand-in that sends every call as its own round trip (the comparison figure)."""

    def __init__(self, client) -> None:
        self.redis, self.calls, self.round_trips = client, 0, 0

    def submit(self, script, keys, args):
        return asyncio.ensure_future(self.run(script, keys, args))

    async def run(self, script, keys, args):
        from redis.exceptions import NoScriptError

        try:
            return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.redis.script_load(script.source)
            return await self.redis.evalsha(script.sha, len(keys), *keys, *args)

    async def close(self) -> None:
        pass


def decisions(args, redis_url: str) -> float:
    import uvloop  # the gateway runs on uvloop, so the figure does too

    print(f"  load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    done, wall, per_trip = uvloop.run(_decisions(redis_url, args.seconds, 32, cycle=False))
    rate = done / wall
    print(f"admission decisions with Redis (key limits script + slot lease script, pipelined): {rate:,.0f}/s in one "
          f"process, {per_trip:.1f} calls per round trip (goal >= 5,000)")
    done, wall, per_trip = uvloop.run(_decisions(redis_url, args.seconds, 32, cycle=True))
    print(f"  with both leases given back too (a whole request's Redis work): {done / wall:,.0f}/s, "
          f"{per_trip:.1f} calls per round trip")
    done, wall, _ = uvloop.run(_decisions(redis_url, args.seconds, 32, cycle=False, batched=False))
    print(f"  for comparison, one round trip per call (not pipelined): {done / wall:,.0f}/s")
    print(f"  load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--real-seconds", type=float, default=30.0)
    parser.add_argument("--real-concurrency", type=int, default=4)
    parser.add_argument("--real-tokens", type=int, default=16)
    parser.add_argument("--only", choices=("scaling", "state", "decisions", "real"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sollama-fleet-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["SOLLAMA_HOME"] = str(home)
        redis = start_redis(Path(tmp) / "redis")
        try:
            if args.only in (None, "scaling"):
                scaling(args, home)
            if args.only in (None, "state"):
                state_cost(args, home, redis.url)
            if args.only in (None, "decisions"):
                decisions(args, redis.url)
            if args.only in (None, "real"):
                real_scaling(args, home)
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
