"""Per-key limits shared by every replica: the same windows as the gateway's `Limiter` (the `limits` library's
fixed windows, same keys, same counting), on the library's **asyncio** Redis storage, so a check never blocks the
event loop and overlaps with other requests. One round trip per admitted request in the steady state: the rpm
window's increment (the library's own Lua script); the window's expiry is read once per window per replica and
cached (a fixed window does not move). Concurrent requests per key stay counted in this replica."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from limits import RateLimitItem

from ollama_ops.core.gateway.accounting import Verdict, tightest
from ollama_ops.core.gateway.keys import KeyRecord
from ollama_ops.gateway.limiter import Limiter


class SharedLimiter(Limiter):
    def __init__(self, url: str) -> None:
        from limits.storage import storage_from_string

        super().__init__(storage=None, clock=time.time)
        # the asyncio storage: its methods are coroutines (typed loosely by the library, hence Any)
        self.aio: Any = storage_from_string("async+" + url, implementation="redispy")
        self._resets: dict[str, float] = {}  # window key -> epoch its window ends
        self._pending: set[asyncio.Task] = set()
        self.errors = 0

    async def _reset_at(self, key: str, item: RateLimitItem, opened: bool) -> float:
        now = self.clock()
        if opened:  # this hit started the window: it ends one period from now
            self._resets[key] = now + item.get_expiry()
        at = self._resets.get(key)
        if at is None or at <= now:
            at = await self.aio.get_expiry(key)
            self._resets[key] = at
        return at

    async def _shared_window(self, kind: str, amount: int, name: str, *, hit: bool) -> Verdict:
        item = self._item(kind, amount)
        key = item.key_for(kind, name)
        if hit:
            used = await self.aio.incr(key, item.get_expiry(), amount=1)
            allowed = used <= amount
        else:
            used = await self.aio.get(key)
            allowed = used < amount
        reset = await self._reset_at(key, item, hit and used == 1) if used else self.clock() + item.get_expiry()
        return Verdict(allowed, kind, amount, amount - used, max(0.0, reset - self.clock()))

    async def admit_async(self, key: KeyRecord) -> tuple[Verdict | None, Verdict | None]:
        """As `Limiter.admit`, on the shared windows."""
        checks: list[Verdict] = []
        if key.concurrency:
            active = self._active.get(key.name, 0)
            checks.append(Verdict(active < key.concurrency, "concurrency", key.concurrency,
                                  key.concurrency - active - 1, 1.0))
        if key.tpm:
            checks.append(await self._shared_window("tpm", key.tpm, key.name, hit=False))
        if key.daily_tokens:
            checks.append(await self._shared_window("daily_tokens", key.daily_tokens, key.name, hit=False))
        refused = [v for v in checks if not v.allowed]
        if refused:
            return tightest(refused), None
        if key.rpm:
            rpm = await self._shared_window("rpm", key.rpm, key.name, hit=True)
            if not rpm.allowed:
                return rpm, None
            checks.append(rpm)
        self._active[key.name] = self._active.get(key.name, 0) + 1
        return None, tightest(checks)

    def admit(self, key: KeyRecord):  # the synchronous path must not be used with shared windows
        raise RuntimeError("SharedLimiter: use admit_async")

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
