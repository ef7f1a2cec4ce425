"""Per-host slot accounting: how many requests each upstream runs right now, and taking/giving back a slot.

`RedisSlots` shares the count across gateway replicas. A slot is a **lease**: a member of the host's sorted set
scored by its expiry (Redis's own clock, so replicas' clocks do not matter). Taking one is one Lua script that
drops expired leases and adds ours only while fewer than `slots` remain, so M replicas together never exceed a
host's slots. The replica renews its live leases every `ttl / 4`; a replica that dies stops renewing, and its
leases expire within `ttl` (`fleet.leases`). Releasing publishes the host's name, so replicas with waiting
requests retry at once. Every script goes through the replica's `ScriptBatch`: the calls made in one event-loop
tick share one round trip.

`LocalSlots` is the same interface in one process (the default without Redis).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ollama_ops.fleet.batch import Script, ScriptBatch
from ollama_ops.fleet.leases import NOW_MS, LeaseKeeper

# KEYS: the candidate hosts' lease sets, in preference order. ARGV: lease id, ttl ms, then each host's slots.
# Takes a slot on the first host with one free; returns {index taken (0 = none), count per host after}.
_ACQUIRE = Script(NOW_MS + """
local got = 0
local out = {0}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local n = redis.call('ZCARD', key)
  if got == 0 and n < tonumber(ARGV[2 + i]) then
    redis.call('ZADD', key, now + tonumber(ARGV[2]), ARGV[1])
    got = i
    n = n + 1
  end
  out[i + 1] = n
end
out[1] = got
return out
""")

# KEYS[1]: a host's lease set, KEYS[2]: the "freed" channel. ARGV[1]: lease id, ARGV[2]: the host's name.
_RELEASE = Script("""
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return removed
""")

# KEYS: lease sets. Returns the live count of each (expired leases dropped first).
_COUNTS = Script(NOW_MS + """
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  out[i] = redis.call('ZCARD', key)
end
return out
""")


@dataclass(frozen=True)
class Lease:
    host: str
    id: str


class LocalSlots:
    """Slot counts in this process only (one replica)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._ids = itertools.count(1)
        self.freed = asyncio.Event()

    async def try_acquire(self, hosts: Sequence[tuple[str, int]]) -> tuple[Lease | None, dict[str, int]]:
        """A slot on the first of `hosts` ((name, slots), in preference order) with one free, else None; and the
        in-flight count of every candidate afterwards."""
        lease = None
        for name, slots in hosts:
            if self.counts.get(name, 0) < slots:
                self.counts[name] = self.counts.get(name, 0) + 1
                lease = Lease(name, str(next(self._ids)))
                break
        return lease, {name: self.counts.get(name, 0) for name, _ in hosts}

    async def release(self, lease: Lease) -> None:
        left = self.counts.get(lease.host, 0) - 1
        self.counts[lease.host] = max(0, left)
        self.freed.set()

    async def in_flight(self, hosts: Sequence[str]) -> dict[str, int]:
        return {name: self.counts.get(name, 0) for name in hosts}

    async def close(self) -> None:
        pass


class RedisSlots:
    """Slot leases shared by every replica through one Redis (see the module doc)."""

    def __init__(self, url: str, *, namespace: str = "sollama", ttl: float = 6.0, replica: str | None = None,
                 client=None) -> None:
        import redis.asyncio as aioredis

        self.redis = client or aioredis.Redis.from_url(url)
        self.batch = ScriptBatch(self.redis)  # calls in the same loop tick share one round trip
        self.leases = LeaseKeeper(self.batch, ttl)  # raises ValueError for a ttl <= 0
        self.namespace, self.ttl, self.ttl_ms = namespace, ttl, self.leases.ttl_ms
        self.replica = replica or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count(1)
        self.held: dict[str, Lease] = {}  # this replica's live leases, renewed until released
        self._undo: set[asyncio.Task] = set()

    def key(self, host: str) -> str:
        # one hash tag for every key, so a Redis Cluster keeps them in one slot (the scripts touch several)
        return f"{{{self.namespace}}}:slots:{host}"

    @property
    def freed_channel(self) -> str:
        return f"{{{self.namespace}}}:slots:freed"

    @property
    def renew_errors(self) -> int:
        return self.leases.renew_errors

    async def try_acquire(self, hosts: Sequence[tuple[str, int]]) -> tuple[Lease | None, dict[str, int]]:
        """A lease on the first of `hosts` ((name, slots), in preference order) with a free slot, else None;
        and the shared in-flight count of every candidate afterwards. One script, atomic; pipelined with the
        other calls of the same loop tick. A caller cancelled meanwhile gives back the lease it got."""
        if not hosts:
            return None, {}
        lease_id = f"{self.replica}:{next(self._ids)}"
        keys = [self.key(name) for name, _ in hosts]
        future = self.batch.submit(_ACQUIRE, keys, [lease_id, self.ttl_ms, *(int(s) for _, s in hosts)])
        try:
            out = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(lambda f: self._give_back(f, hosts, lease_id))
            raise
        got = int(out[0])
        counts = {name: int(n) for (name, _), n in zip(hosts, out[1:], strict=True)}
        if got == 0:
            return None, counts
        lease = Lease(hosts[got - 1][0], lease_id)
        self.held[lease_id] = lease
        self.leases.hold(lease_id, self.key(lease.host))
        return lease, counts

    def _give_back(self, future: asyncio.Future, hosts: Sequence[tuple[str, int]], lease_id: str) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        got = int(future.result()[0])
        if got:
            task = asyncio.get_running_loop().create_task(self.release(Lease(hosts[got - 1][0], lease_id)))
            self._undo.add(task)
            task.add_done_callback(self._undo.discard)

    async def release(self, lease: Lease) -> None:
        self.held.pop(lease.id, None)
        self.leases.drop(lease.id)
        await self.batch.run(_RELEASE, [self.key(lease.host), self.freed_channel], [lease.id, lease.host])

    async def in_flight(self, hosts: Sequence[str]) -> dict[str, int]:
        if not hosts:
            return {}
        out = await self.batch.run(_COUNTS, [self.key(h) for h in hosts], [])
        return {h: int(n) for h, n in zip(hosts, out, strict=True)}

    async def renew(self) -> int:
        """Extend every lease this replica holds by `ttl` from now; returns how many were still there."""
        return await self.leases.renew()

    async def close(self) -> None:
        await self.leases.close()
        if self._undo:
            await asyncio.gather(*list(self._undo), return_exceptions=True)
        await self.batch.close()
        await self.redis.aclose()


def in_flight_sync(url: str, hosts: Sequence[str], *, namespace: str = "sollama") -> dict[str, int]:
    """The live lease count of each host (for `sollama status --fleet`; read-only: expired leases are not
    counted, and left for the replicas to drop)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        seconds, micros = client.time()
        now = seconds * 1000 + micros // 1000
        pipe = client.pipeline(transaction=False)
        for host in hosts:
            pipe.zcount(f"{{{namespace}}}:slots:{host}", f"({now}", "+inf")
        return {host: int(n) for host, n in zip(hosts, pipe.execute(), strict=True)}
    finally:
        client.close()
