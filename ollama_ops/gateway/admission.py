"""Admission: at most `slots` requests in flight upstream; the rest wait in a bounded fair queue (weighted by
the key's priority, FIFO within a key) for at most `max_wait` seconds.

Every outcome of a wait reaches the waiting request through its one future: a slot (True), the wait expired
(WaitExpired), the gateway is draining (Draining). A waiting task that is cancelled (its caller disconnected)
leaves the queue at once, so nothing is ever sent upstream for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ollama_ops.core.gateway.fairqueue import FairQueue


class Refused(Exception):
    """A request that will not get a slot: 503 with Retry-After."""

    retry_after = 1


class QueueFull(Refused):
    pass


class WaitExpired(Refused):
    pass


class Draining(Refused):
    pass


@dataclass(eq=False)
class Waiter:
    key: str
    request_id: str
    model: str
    since: float
    future: asyncio.Future[bool] = field(repr=False)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Admission:
    """Slots and the fair queue of one upstream (one event loop)."""

    def __init__(self, slots: int, depth: int, max_wait: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots, self.depth, self.max_wait = slots, depth, max_wait
        self.clock = clock
        self.in_flight = 0
        self.queue: FairQueue[Waiter] = FairQueue()
        self.draining = False
        self.served = 0

    @property
    def queued(self) -> int:
        return len(self.queue)

    def try_acquire(self) -> bool:
        """A slot at once when one is free and nobody waits (the fast path: no future, no timer)."""
        if self.draining:
            raise Draining()
        if self.in_flight < self.slots and not self.queue:
            self.in_flight += 1
            self.served += 1
            return True
        return False

    async def acquire(self, key: str, priority: float, *, request_id: str = "", model: str = "") -> float:
        """Wait for a slot; returns the seconds waited. Raises QueueFull, WaitExpired or Draining."""
        if self.try_acquire():
            return 0.0
        if len(self.queue) >= self.depth:
            raise QueueFull()
        loop = asyncio.get_running_loop()
        waiter = Waiter(key, request_id, model, self.clock(), loop.create_future())
        self.queue.push(key, waiter, priority)
        waiter.timer = loop.call_later(self.max_wait, self._expire, waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        finally:
            waiter.timer.cancel()
        return self.clock() - waiter.since

    def _abandon(self, waiter: Waiter) -> None:
        if self.queue.remove(waiter):
            return
        fut = waiter.future
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            self.release()  # the slot came just as the caller left: pass it on

    def _expire(self, waiter: Waiter) -> None:
        if self.queue.remove(waiter) and not waiter.future.done():
            waiter.future.set_exception(WaitExpired())

    def release(self) -> None:
        """A request left its slot: give it to the next waiter, if any."""
        self.in_flight -= 1
        while self.queue and self.in_flight < self.slots:
            waiter = self.queue.pop()
            if waiter is None or waiter.future.done():
                continue
            self.in_flight += 1
            self.served += 1
            waiter.future.set_result(True)

    def drain(self) -> int:
        """Stop admitting: every waiter gets Draining (503); returns how many."""
        self.draining = True
        waiters = self.queue.drain()
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(Draining())
        return len(waiters)

    def snapshot(self) -> list[tuple[int, Waiter]]:
        """Waiting requests in the order they would be served (position from 1), without disturbing the queue."""
        shadow = self.queue.clone()
        out: list[tuple[int, Waiter]] = []
        position = 0
        while (waiter := shadow.pop()) is not None:
            position += 1
            out.append((position, waiter))
        return out

