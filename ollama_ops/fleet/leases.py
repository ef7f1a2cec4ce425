"""Leases a replica holds in Redis sorted sets (a host's slots, a key's concurrent requests): each member is a
lease id scored by its expiry on Redis's clock. The holder renews its live leases every `ttl / 4`; a replica that
dies stops renewing, and its leases expire within `ttl`, so whatever they counted comes back without anyone
cleaning up. Every script that counts a set drops its expired members first."""

from __future__ import annotations

import asyncio
import contextlib

from ollama_ops.fleet.batch import Script, ScriptBatch

# The current time in ms on Redis's clock (a prologue for the scripts that need it).
NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1]: a lease set. ARGV[1]: ttl ms, ARGV[2..]: lease ids to extend (only those still present).
RENEW = Script(NOW_MS + """
local renewed = 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
""")


class LeaseKeeper:
    """This replica's live leases (lease id → its set's key), renewed in the background until dropped."""

    def __init__(self, batch: ScriptBatch, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError("the lease ttl must be positive")
        self.batch, self.ttl = batch, ttl
        self.ttl_ms = max(1, int(ttl * 1000))
        self.held: dict[str, str] = {}
        self._renewer: asyncio.Task[None] | None = None
        self.renew_errors = 0

    def hold(self, lease_id: str, key: str) -> None:
        self.held[lease_id] = key
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    def drop(self, lease_id: str) -> None:
        self.held.pop(lease_id, None)

    async def renew(self) -> int:
        """Extend every held lease by `ttl` from now (one pipeline for all sets); how many were still there."""
        by_key: dict[str, list[str]] = {}
        for lease_id, key in list(self.held.items()):
            by_key.setdefault(key, []).append(lease_id)
        counts = await asyncio.gather(*(self.batch.run(RENEW, [key], [self.ttl_ms, *ids])
                                        for key, ids in by_key.items()))
        return sum(int(n) for n in counts)

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
