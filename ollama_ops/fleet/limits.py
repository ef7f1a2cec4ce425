"""Per-key limits shared by every replica: the same checks as the gateway's `Limiter` (rpm, tpm, daily tokens on
the `limits` library's fixed windows; concurrent requests), counted in Redis.

A decision is **one Lua script** (`_ADMIT`), pipelined with the other calls of the same loop tick
(`fleet.batch`). It does, atomically, what `Limiter.admit` does in one process:
1. the key's concurrent requests: a lease set like the slot leases (`fleet.leases`): expired members dropped,
   counted; a lease is added only when the request is admitted, renewed while it runs, removed when it ends (or
   its caller disconnects), and a dead replica's leases expire within the lease TTL;
2. the token windows, tested (GET: allowed while used < limit);
3. the rpm window, hit: INCRBY 1, and EXPIRE when it was the window's first hit, which is the `limits` library's
   own `incr_expire.lua`; allowed while the count is <= the limit (a refused hit counts, as the library's does).
Nothing is counted when 1 or 2 refuses. The windows live under the `limits` Redis storage's own keys
(`LIMITS:LIMITER/rpm/<key>/<n>/1/minute`), so the library reads and clears them as its own, and the tokens a
finished request used are charged through the library's asyncio storage (`charge`, off the hot path). The
window's reset time comes back with the counts (PTTL): no second round trip, and exact at the window's edge.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from typing import Any

from ollama_ops.core.gateway.accounting import Verdict, tightest
from ollama_ops.core.gateway.keys import KeyRecord
from ollama_ops.fleet.batch import Script, ScriptBatch
from ollama_ops.fleet.leases import NOW_MS, LeaseKeeper
from ollama_ops.gateway.limiter import Limiter

# KEYS[1]: the key's concurrency lease set; KEYS[2..1+T]: the token windows to test; KEYS[2+T]: the rpm window.
# ARGV: lease id, lease ttl ms, concurrency limit (0 = none), T, the T token limits, rpm limit (0 = none), the rpm
# window's seconds. Returns {outcome (0 admitted, 1 refused with nothing counted, 2 refused by rpm), concurrent
# leases before this one, then (used, pttl ms) of each token window and of the rpm window}.
_ADMIT = Script(NOW_MS + """
local concurrency = tonumber(ARGV[3])
local active = 0
if concurrency > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  active = redis.call('ZCARD', KEYS[1])
end
local out = {0, active}
local refused = concurrency > 0 and active >= concurrency
local tests = tonumber(ARGV[4])
for i = 1, tests do
  local used = tonumber(redis.call('GET', KEYS[1 + i]) or '0')
  out[#out + 1] = used
  out[#out + 1] = redis.call('PTTL', KEYS[1 + i])
  if used >= tonumber(ARGV[4 + i]) then refused = true end
end
if refused then
  out[1] = 1
  return out
end
local rpm = tonumber(ARGV[5 + tests])
if rpm > 0 then
  local window = KEYS[2 + tests]
  local current = redis.call('INCRBY', window, 1)
  if tonumber(current) == 1 then
    redis.call('EXPIRE', window, ARGV[6 + tests])
  end
  out[#out + 1] = current
  out[#out + 1] = redis.call('PTTL', window)
  if current > rpm then
    out[1] = 2
    return out
  end
end
if concurrency > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return out
""")

# KEYS[1]: a key's concurrency lease set. ARGV[1]: the lease id.
_RELEASE = Script("return redis.call('ZREM', KEYS[1], ARGV[1])")


class SharedLimiter(Limiter):
    def __init__(self, url: str, *, namespace: str = "sollama", lease_ttl: float = 6.0, client: Any = None) -> None:
        import redis.asyncio as aioredis
        from limits.storage import storage_from_string

        super().__init__(storage=None, clock=time.time)
        # the library's asyncio storage: the windows' key names, and the token charges (typed loosely: Any)
        self.aio: Any = storage_from_string("async+" + url, implementation="redispy")
        self.redis = client or aioredis.Redis.from_url(url)
        self.batch = ScriptBatch(self.redis)
        self.leases = LeaseKeeper(self.batch, lease_ttl)
        self.namespace = namespace
        self.replica = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count(1)
        self._lease_ids: dict[str, list[str]] = {}  # key name -> this replica's concurrency leases
        self._pending: set[asyncio.Task] = set()
        self.errors = 0

    def concurrency_key(self, name: str) -> str:
        return f"{{{self.namespace}}}:concurrency:{name}"

    def window_key(self, kind: str, amount: int, name: str) -> str:
        """The `limits` Redis storage's key for this window (the library reads and clears it as its own)."""
        return self.aio.bridge.prefixed_key(self._item(kind, amount).key_for(kind, name))

    def _reset_s(self, pttl: int, kind: str, amount: int) -> float:
        return pttl / 1000 if pttl > 0 else float(self._item(kind, amount).get_expiry())

    async def admit_async(self, key: KeyRecord) -> tuple[Verdict | None, Verdict | None]:
        """As `Limiter.admit`, on the shared windows and the shared concurrency count: one script."""
        if not (key.concurrency or key.tpm or key.daily_tokens or key.rpm):
            self._active[key.name] = self._active.get(key.name, 0) + 1
            return None, None
        tests = [(kind, amount) for kind, amount in (("tpm", key.tpm), ("daily_tokens", key.daily_tokens)) if amount]
        lease_id = f"{self.replica}:{next(self._ids)}"
        keys = [self.concurrency_key(key.name), *(self.window_key(k, a, key.name) for k, a in tests)]
        args: list[Any] = [lease_id, self.leases.ttl_ms, key.concurrency or 0, len(tests), *(a for _, a in tests)]
        if key.rpm:
            keys.append(self.window_key("rpm", key.rpm, key.name))
            args += [key.rpm, self._item("rpm", key.rpm).get_expiry()]
        else:
            args += [0, 0]
        future = self.batch.submit(_ADMIT, keys, args)
        try:
            out = await asyncio.shield(future)
        except asyncio.CancelledError:  # the caller left: a lease the script took is given back
            if key.concurrency:
                future.add_done_callback(lambda f: self._give_back(f, key.name, lease_id))
            raise
        outcome, active = int(out[0]), int(out[1])
        checks: list[Verdict] = []
        if key.concurrency:
            checks.append(Verdict(active < key.concurrency, "concurrency", key.concurrency,
                                  key.concurrency - active - 1, 1.0))
        pos = 2
        for kind, amount in tests:
            used, pttl = int(out[pos]), int(out[pos + 1])
            pos += 2
            checks.append(Verdict(used < amount, kind, amount, amount - used, self._reset_s(pttl, kind, amount)))
        if outcome == 1:
            return tightest([v for v in checks if not v.allowed]), None
        if key.rpm:
            used, pttl = int(out[pos]), int(out[pos + 1])
            rpm = Verdict(used <= key.rpm, "rpm", key.rpm, key.rpm - used, self._reset_s(pttl, "rpm", key.rpm))
            if outcome == 2:
                return rpm, None
            checks.append(rpm)
        if key.concurrency:
            self._lease_ids.setdefault(key.name, []).append(lease_id)
            self.leases.hold(lease_id, self.concurrency_key(key.name))
        self._active[key.name] = self._active.get(key.name, 0) + 1
        return None, tightest(checks)

    def _give_back(self, future: asyncio.Future, name: str, lease_id: str) -> None:
        if not future.cancelled() and future.exception() is None and int(future.result()[0]) == 0:
            self._drop_lease(name, lease_id)

    def _drop_lease(self, name: str, lease_id: str) -> None:
        # submitted now, not from a task: a decision made after this call is pipelined after the removal
        self.leases.drop(lease_id)
        self.batch.submit(_RELEASE, [self.concurrency_key(name)], [lease_id]).add_done_callback(self._count_error)

    def _count_error(self, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:  # Redis away: the lease expires on its own
            self.errors += 1

    def admit(self, key: KeyRecord):  # the synchronous path must not be used with shared windows
        raise RuntimeError("SharedLimiter: use admit_async")

    def release(self, key: KeyRecord) -> None:
        """The request ended (or its caller left): its concurrency lease goes back (in the background; until the
        script has run, the lease still counts, which errs on the safe side)."""
        super().release(key)
        ids = self._lease_ids.get(key.name)
        if not ids:
            return
        lease_id = ids.pop()
        if not ids:
            del self._lease_ids[key.name]
        self._drop_lease(key.name, lease_id)

    def charge(self, key: KeyRecord, tokens: int) -> None:
        """Count a finished request's tokens in the shared token windows (in the background: the response is
        already complete)."""
        if tokens <= 0 or not (key.tpm or key.daily_tokens):
            return
        task = asyncio.get_running_loop().create_task(self._charge(key, tokens))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _charge(self, key: KeyRecord, tokens: int) -> None:
        try:
            for kind, amount in (("tpm", key.tpm), ("daily_tokens", key.daily_tokens)):
                if amount:
                    item = self._item(kind, amount)
                    await self.aio.incr(item.key_for(kind, key.name), item.get_expiry(), amount=tokens)
        except Exception:  # Redis away: this request's tokens go uncounted, the next admit will say so
            self.errors += 1

    async def close(self) -> None:
        """Finish the background work (releases, charges), stop renewing, close the connections."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self.leases.close()
        await self.batch.close()
        await self.redis.aclose()
