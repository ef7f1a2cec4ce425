"""Per-key limits: requests/min, tokens/min, tokens/day on the `limits` library's fixed windows (its storage is
pluggable: `memory://` in one process now, `redis://` for several replicas later), and concurrent requests on
a plain in-process counter (a lease count, not a window). With `gateway.state: redis://` the fleet's
`SharedLimiter` keeps both in Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from ollama_ops.core.gateway.accounting import Verdict, tightest
from ollama_ops.core.gateway.keys import KeyRecord


class ClockStorage(Storage):
    """A `limits` storage in memory with an injectable clock (the windows' edges can be tested exactly) and no
    timer threads: expired counters are dropped when read."""

    STORAGE_SCHEME = ["sollama-clock"]

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(None)
        self.clock = clock
        self._counts: dict[str, int] = {}
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def _live(self, key: str) -> None:
        if self._expiry.get(key, 0.0) <= self.clock():
            self._counts.pop(key, None)
            self._expiry.pop(key, None)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        with self._lock:
            self._live(key)
            if key not in self._counts:
                self._counts[key] = 0
                self._expiry[key] = self.clock() + expiry
            self._counts[key] += amount
            return self._counts[key]

    def get(self, key: str) -> int:
        with self._lock:
            self._live(key)
            return self._counts.get(key, 0)

    def get_expiry(self, key: str) -> float:
        with self._lock:
            self._live(key)
            return self._expiry.get(key, self.clock())

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            n = len(self._counts)
            self._counts.clear()
            self._expiry.clear()
            return n

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)
            self._expiry.pop(key, None)


def make_storage(uri: str) -> Storage:
    storage = storage_from_string(uri)
    if not isinstance(storage, Storage):  # an async+… URI: the limiter calls its storage synchronously
        raise ValueError(f"rate-limit storage {uri!r} is asynchronous; the gateway's limiter needs a synchronous one")
    return storage


class Limiter:
    """Admission checks and token charges for keys; one instance per gateway."""

    def __init__(self, storage: Storage | None = None, *, clock: Callable[[], float] | None = None) -> None:
        self.storage = storage if storage is not None else ClockStorage()
        self.clock: Callable[[], float] = clock if clock is not None else getattr(self.storage, "clock", time.time)
        self.windows = FixedWindowRateLimiter(self.storage)
        self._active: dict[str, int] = {}
        self._items: dict[tuple[str, int], RateLimitItem] = {}

    def _item(self, kind: str, amount: int) -> RateLimitItem:
        item = self._items.get((kind, amount))
        if item is None:
            item = RateLimitItemPerDay(amount) if kind == "daily_tokens" else RateLimitItemPerMinute(amount)
            self._items[(kind, amount)] = item
        return item

    def _window(self, kind: str, amount: int, name: str, *, hit: bool) -> Verdict:
        item = self._item(kind, amount)
        if hit:
            allowed = self.windows.hit(item, kind, name)
        else:
            allowed = self.windows.test(item, kind, name)
        stats = self.windows.get_window_stats(item, kind, name)
        return Verdict(allowed, kind, amount, stats.remaining, max(0.0, stats.reset_time - self.clock()))

    def admit(self, key: KeyRecord) -> tuple[Verdict | None, Verdict | None]:
        """(refusal, headers): a refusal when a limit is reached (nothing is counted then), else None and the
        tightest limit for the RateLimit-* headers (None when the key has no limits). An admitted request holds
        a concurrency lease until `release`."""
        checks: list[Verdict] = []
        if key.concurrency:
            active = self._active.get(key.name, 0)
            checks.append(Verdict(active < key.concurrency, "concurrency", key.concurrency,
                                  key.concurrency - active - 1, 1.0))
        if key.tpm:
            checks.append(self._window("tpm", key.tpm, key.name, hit=False))
        if key.daily_tokens:
            checks.append(self._window("daily_tokens", key.daily_tokens, key.name, hit=False))
        refused = [v for v in checks if not v.allowed]
        if refused:
            return tightest(refused), None
        if key.rpm:
            rpm = self._window("rpm", key.rpm, key.name, hit=True)
            if not rpm.allowed:
                return rpm, None
            checks.append(rpm)
        self._active[key.name] = self._active.get(key.name, 0) + 1
        return None, tightest(checks)

    async def admit_async(self, key: KeyRecord) -> tuple[Verdict | None, Verdict | None]:
        """`admit` for the asyncio hot path (the fleet's shared limiter overrides it with Redis round trips that
        do not block the event loop)."""
        return self.admit(key)

    def release(self, key: KeyRecord) -> None:
        left = self._active.get(key.name, 0) - 1
        if left > 0:
            self._active[key.name] = left
        else:
            self._active.pop(key.name, None)

    def charge(self, key: KeyRecord, tokens: int) -> None:
        """Count a finished request's tokens against the key's token windows (may overshoot the limit: the
        cost is known only afterwards; the next request is refused until the window resets)."""
        if tokens <= 0:
            return
        if key.tpm:
            self.windows.hit(self._item("tpm", key.tpm), "tpm", key.name, cost=tokens)
        if key.daily_tokens:
            self.windows.hit(self._item("daily_tokens", key.daily_tokens), "daily_tokens", key.name, cost=tokens)

    def active(self, name: str) -> int:
        return self._active.get(name, 0)

    async def close(self) -> None:
        """Nothing to close in one process (the shared limiter closes its Redis connections)."""
