"""Per-host slot accounting: how many requests each upstream runs right now, and taking/giving back a slot.

`RedisSlots` shares the count across gateway replicas. A slot is a **lease**: a member of the host's sorted set
scored by its expiry (Redis's own clock, so replicas' clocks do not matter). Taking one is one Lua script that
drops expired leases and adds ours only while fewer than `slots` remain, so M replicas together never exceed a
host's slots. The replica renews its live leases every `ttl / 4`; a replica that dies stops renewing, and its
leases expire within `ttl`. Releasing publishes the host's name, so replicas with waiting requests retry at once.

`LocalSlots` is the same interface in one process (the default without Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

# KEYS: the candidate hosts' lease sets, in preference order. ARGV: lease id, ttl ms, then each host's slots.
# Takes a slot on the first host with one free; returns {index taken (0 = none), count per host after}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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
"""

# KEYS[1]: a host's lease set, KEYS[2]: the "freed" channel. ARGV[1]: lease id, ARGV[2]: the host's name.
_RELEASE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return removed
"""

# KEYS[1]: a host's lease set. ARGV[1]: ttl ms, ARGV[2..]: lease ids to extend (only those still present).
_RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], until_, ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
"""

# KEYS: lease sets. Returns the live count of each (expired leases dropped first).
_COUNTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  out[i] = redis.call('ZCARD', key)
end
return out
"""


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

        if ttl <= 0:
            raise ValueError("the lease ttl must be positive")
        self.redis = client or aioredis.Redis.from_url(url)
        self.namespace, self.ttl = namespace, ttl
        self.ttl_ms = max(1, int(ttl * 1000))
        self.replica = replica or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count(1)
        self.held: dict[str, Lease] = {}  # this replica's live leases, renewed until released
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._release = self.redis.register_script(_RELEASE)
        self._renew = self.redis.register_script(_RENEW)
        self._counts = self.redis.register_script(_COUNTS)
        self._renewer: asyncio.Task | None = None
        self.renew_errors = 0

    def key(self, host: str) -> str:
        # one hash tag for every key, so a Redis Cluster keeps them in one slot (the scripts touch several)
        return f"{{{self.namespace}}}:slots:{host}"

    @property
    def freed_channel(self) -> str:
        return f"{{{self.namespace}}}:slots:freed"

    async def try_acquire(self, hosts: Sequence[tuple[str, int]]) -> tuple[Lease | None, dict[str, int]]:
        """A lease on the first of `hosts` ((name, slots), in preference order) with a free slot, else None;
        and the shared in-flight count of every candidate afterwards. One round trip, atomic."""
        if not hosts:
            return None, {}
        lease_id = f"{self.replica}:{next(self._ids)}"
        keys = [self.key(name) for name, _ in hosts]
        out = await self._acquire(keys=keys, args=[lease_id, self.ttl_ms, *(int(s) for _, s in hosts)])
        got = int(out[0])
        counts = {name: int(n) for (name, _), n in zip(hosts, out[1:], strict=True)}
        if got == 0:
            return None, counts
        lease = Lease(hosts[got - 1][0], lease_id)
        self.held[lease_id] = lease
        self._ensure_renewer()
        return lease, counts

    async def release(self, lease: Lease) -> None:
        self.held.pop(lease.id, None)
        await self._release(keys=[self.key(lease.host), self.freed_channel], args=[lease.id, lease.host])

    async def in_flight(self, hosts: Sequence[str]) -> dict[str, int]:
        if not hosts:
            return {}
        out = await self._counts(keys=[self.key(h) for h in hosts])
        return {h: int(n) for h, n in zip(hosts, out, strict=True)}

    async def renew(self) -> int:
        """Extend every lease this replica holds by `ttl` from now; returns how many were still there."""
        by_host: dict[str, list[str]] = {}
        for lease in list(self.held.values()):
            by_host.setdefault(lease.host, []).append(lease.id)
        renewed = 0
        for host, ids in by_host.items():
            renewed += int(await self._renew(keys=[self.key(host)], args=[self.ttl_ms, *ids]))
        return renewed

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        while self.held:
            await asyncio.sleep(self.ttl / 4)
            try:
                await self.renew()
            except Exception:  # a Redis hiccup: the next round tries again; the lease ttl bounds the damage
                self.renew_errors += 1

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
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
