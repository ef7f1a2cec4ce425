"""Shared state in a real redis-server: slot leases across processes, lease expiry after a SIGKILL, key-change
broadcast, the replica registry, and the `limits` library's Redis windows across two clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ollama_ops.fleet.replicas import RedisReplicas, ReplicaInfo, live_sync
from ollama_ops.fleet.revocation import RedisRevocations, announce_sync, version_key
from ollama_ops.fleet.slots import LocalSlots, RedisSlots

ROOT = Path(__file__).resolve().parents[1]
H1, H2 = "http://127.0.0.1:1001", "http://127.0.0.1:1002"


def worker(kind: str, **args) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.fleet_workers", kind, json.dumps(args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str], timeout: float = 180) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_leases_across_two_processes_never_exceed_slots(redis_url):
    slots = 3
    procs = [worker("hammer", url=redis_url, host=H1, slots=slots, workers=8, rounds=40, ttl=5.0)
             for _ in range(2)]
    outs = [result(p) for p in procs]
    assert [o["taken"] for o in outs] == [320, 320]  # every worker finished all its rounds
    assert max(o["peak"] for o in outs) == slots  # contention reached the limit and never passed it
    assert sum(o["refused"] for o in outs) > 0  # some acquisitions had to wait
    counts = asyncio.run(_counts(redis_url, [H1]))
    assert counts == {H1: 0}  # every lease was released


async def _counts(url, hosts):
    pool = RedisSlots(url)
    try:
        return await pool.in_flight(hosts)
    finally:
        await pool.close()


def test_acquire_takes_the_first_host_with_a_free_slot(redis_url):
    async def run():
        pool = RedisSlots(redis_url, ttl=5.0)
        try:
            got = []
            for _ in range(5):
                lease, counts = await pool.try_acquire([(H1, 2), (H2, 2)])
                got.append((None if lease is None else lease.host, counts))
            assert got == [(H1, {H1: 1, H2: 0}), (H1, {H1: 2, H2: 0}), (H2, {H1: 2, H2: 1}),
                           (H2, {H1: 2, H2: 2}), (None, {H1: 2, H2: 2})]
            assert len(pool.held) == 4
            first = next(iter(pool.held.values()))
            await pool.release(first)
            assert await pool.in_flight([H1, H2]) == {H1: 1, H2: 2}
            lease, _ = await pool.try_acquire([(H2, 2), (H1, 2)])
            assert lease is not None and lease.host == H1
            assert await pool.try_acquire([]) == (None, {})
        finally:
            await pool.close()

    asyncio.run(run())


def test_local_slots_same_interface():
    async def run():
        pool = LocalSlots()
        a, _ = await pool.try_acquire([(H1, 1), (H2, 1)])
        b, counts = await pool.try_acquire([(H1, 1), (H2, 1)])
        c, _ = await pool.try_acquire([(H1, 1), (H2, 1)])
        assert (a.host, b.host, c, counts) == (H1, H2, None, {H1: 1, H2: 1})
        await pool.release(a)
        assert await pool.in_flight([H1, H2]) == {H1: 0, H2: 1}
        assert pool.freed.is_set()

    asyncio.run(run())


def test_renewed_lease_outlives_its_ttl_and_release_frees_it(redis_url):
    async def run():
        pool = RedisSlots(redis_url, ttl=1.0)
        try:
            lease, _ = await pool.try_acquire([(H1, 1)])
            assert lease is not None
            samples = []
            for _ in range(12):  # 3 s: three lease lifetimes, kept alive by the renewer
                await asyncio.sleep(0.25)
                samples.append((await pool.in_flight([H1]))[H1])
            assert samples == [1] * 12
            assert (await pool.try_acquire([(H1, 1)]))[0] is None
            await pool.release(lease)
            assert await pool.in_flight([H1]) == {H1: 0}
            assert pool.renew_errors == 0
        finally:
            await pool.close()

    asyncio.run(run())


def test_leases_of_a_killed_process_come_back_within_the_ttl(redis_url):
    ttl = 1.5
    proc = worker("hold", url=redis_url, host=H1, slots=2, count=2, ttl=ttl)
    try:
        line = proc.stdout.readline()
        assert json.loads(line) == {"held": 2}, proc.stderr.read() if not line else line
        os.kill(proc.pid, signal.SIGKILL)  # the process we started, by its PID
        proc.wait(timeout=10)
        killed = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    async def watch():
        pool = RedisSlots(redis_url, ttl=ttl)
        try:
            seen = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                seen.append((await pool.in_flight([H1]))[H1])
                if seen[-1] == 0:
                    break
                await asyncio.sleep(0.05)
            lease, _ = await pool.try_acquire([(H1, 2)])
            return seen, lease
        finally:
            await pool.close()

    seen, lease = asyncio.run(watch())
    freed_after = time.monotonic() - killed
    sys.stderr.write(f"\nleases of the killed process freed {freed_after:.2f} s after SIGKILL (ttl {ttl} s)\n")
    assert seen[0] == 2  # still held right after the kill: they expire, they are not dropped early
    assert seen[-1] == 0 and seen == sorted(seen, reverse=True)
    assert lease is not None


def test_key_change_reaches_every_watcher(redis_url):
    async def run():
        watchers = [RedisRevocations(redis_url, poll=0.2) for _ in range(2)]
        events = [asyncio.Event(), asyncio.Event()]
        tasks = [asyncio.create_task(w.watch(e.set)) for w, e in zip(watchers, events, strict=True)]
        try:
            for _ in range(100):  # both subscribed and holding the current version
                if all(w.version is not None for w in watchers):
                    break
                await asyncio.sleep(0.05)
            version = await asyncio.to_thread(announce_sync, redis_url, "team-a")
            sent = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 10)
            latency = time.monotonic() - sent
            assert [w.version for w in watchers] == [version, version] == [1, 1]
            sys.stderr.write(f"\nkey change seen by both watchers after {latency * 1000:.1f} ms\n")
            # a change whose message is lost (only the version moved) is still picked up by the poll
            for e in events:
                e.clear()
            await watchers[0].redis.incr(version_key("sollama"))
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 10)
            assert [w.version for w in watchers] == [2, 2]
            assert [w.errors for w in watchers] == [0, 0]
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in watchers:
                await w.close()

    asyncio.run(run())


def test_replica_registry(redis_url):
    async def run():
        reg = RedisReplicas(redis_url, ttl=30)
        short = RedisReplicas(redis_url, ttl=0.3)
        try:
            await reg.beat(ReplicaInfo("r1", "http://127.0.0.1:8001", pid=11, in_flight=2, queued=3))
            await reg.beat(ReplicaInfo("r2", "http://127.0.0.1:8000", pid=12, in_flight=1, queued=4))
            await short.beat(ReplicaInfo("r3", "http://127.0.0.1:8002", queued=100))
            assert [r.id for r in await reg.live()] == ["r2", "r1", "r3"]
            for _ in range(100):
                await asyncio.sleep(0.05)
                if len(await reg.live()) == 2:
                    break
            assert [(r.id, r.in_flight, r.queued) for r in await reg.live()] == [("r2", 1, 4), ("r1", 2, 3)]
            assert await reg.queue_depth() == 7
            assert [r.id for r in live_sync(redis_url)] == ["r2", "r1"]
            await reg.leave("r2")
            assert [r.id for r in await reg.live()] == ["r1"]
        finally:
            await reg.close()
            await short.close()

    asyncio.run(run())


def test_limits_redis_window_gives_exactly_n_across_two_clients(redis_url):
    # a fixed one-minute window: start well inside one, so both clients hit the same window
    into_minute = time.time() % 60
    if into_minute > 45:
        time.sleep(60.5 - into_minute)
    procs = [worker("limit", url=redis_url, name="team-a", per_minute=25, hits=40) for _ in range(2)]
    allowed = [result(p)["allowed"] for p in procs]
    assert sum(allowed) == 25, allowed  # not 2 x 25: the window is one counter in Redis


@pytest.mark.parametrize("ttl", [0, -1])
def test_bad_ttl_is_refused(redis_url, ttl):
    with pytest.raises(ValueError):
        RedisSlots(redis_url, ttl=ttl)
