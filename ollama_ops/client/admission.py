"""Client-side concurrency control: at most `limit` requests in flight, the next callers wait in FIFO order,
and past `max_queue` waiting callers (or `queue_timeout` seconds of waiting) a caller gets QueueFull.

One gate per client: `ThreadGate` for threads (the sync client), `TaskGate` for asyncio tasks (the async one).
A released slot is handed straight to the oldest waiter, so nobody can overtake the queue.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

from ollama_ops.errors import QueueFull


def _full(limit: int, max_queue: int | None) -> QueueFull:
    return QueueFull(f"request queue full: {limit} request(s) in flight and {max_queue} waiting",
                     hint="raise max_queue or max_concurrency, or slow down")


def _timed_out(waited: float) -> QueueFull:
    return QueueFull(f"waited {waited:.3g}s for a free request slot (queue_timeout)",
                     hint="raise queue_timeout or max_concurrency")


class ThreadGate:
    def __init__(self, limit: int, max_queue: int | None = None, queue_timeout: float | None = None) -> None:
        if limit < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.limit = limit
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.active = 0
        self._waiters: deque[threading.Event] = deque()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def acquire(self) -> None:
        with self._lock:
            if self.active < self.limit and not self._waiters:
                self.active += 1
                return
            if self.max_queue is not None and len(self._waiters) >= self.max_queue:
                raise _full(self.limit, self.max_queue)
            ticket = threading.Event()
            self._waiters.append(ticket)
        start = time.monotonic()
        if ticket.wait(self.queue_timeout):
            return  # the releaser handed its slot over
        with self._lock:
            if ticket.is_set():  # handed over just as the wait ended
                return
            self._waiters.remove(ticket)
        raise _timed_out(time.monotonic() - start)

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self.active -= 1


class TaskGate:
    def __init__(self, limit: int, max_queue: int | None = None, queue_timeout: float | None = None) -> None:
        if limit < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.limit = limit
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return
        if self.max_queue is not None and len(self._waiters) >= self.max_queue:
            raise _full(self.limit, self.max_queue)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        start = time.monotonic()
        try:
            if self.queue_timeout is None:
                await fut
            else:
                await asyncio.wait_for(asyncio.shield(fut), self.queue_timeout)
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                return  # handed over just as the wait ended
            fut.cancel()
            self._drop(fut)
            raise _timed_out(time.monotonic() - start) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot arrived as we were cancelled: pass it on
            else:
                self._drop(fut)
            raise

    def _drop(self, fut: asyncio.Future[None]) -> None:
        if fut in self._waiters:
            self._waiters.remove(fut)

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.active -= 1
