"""Client-side concurrency control: at most `limit` requests in flight, the next callers wait in FIFO order,
and past `max_queue` waiting callers (or `queue_timeout` seconds of waiting) a caller gets QueueFull.

One core (`Gate`: the counts, the FIFO of waiters, the hand-over) and two ways to wait on it: `ThreadGate` for
threads (the sync client), `TaskGate` for asyncio tasks (the async one). A released slot is handed straight to
the oldest waiter, so nobody can overtake the queue.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from ollama_ops.errors import QueueFull

T = TypeVar("T")


def _full(limit: int, max_queue: int | None) -> QueueFull:
    return QueueFull(f"request queue full: {limit} request(s) in flight and {max_queue} waiting",
                     hint="raise max_queue or max_concurrency, or slow down")


def _timed_out(waited: float) -> QueueFull:
    return QueueFull(f"waited {waited:.3g}s for a free request slot (queue_timeout)",
                     hint="raise queue_timeout or max_concurrency")


class Gate(Generic[T]):
    """The bookkeeping both gates share; no waiting and no locking here (the caller holds its lock).

    A waiter is a ticket of the caller's kind (an Event, a Future); `wake(ticket)` hands a slot to it and says
    whether it took it (a ticket already given up does not)."""

    def __init__(self, limit: int, max_queue: int | None, queue_timeout: float | None,
                 wake: Callable[[T], bool]) -> None:
        if limit < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.limit = limit
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.active = 0
        self._waiters: deque[T] = deque()
        self._wake = wake

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def enter(self, ticket: Callable[[], T]) -> T | None:
        """None: the caller holds a slot now. Else the (queued) ticket to wait on. QueueFull past `max_queue`."""
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return None
        if self.max_queue is not None and len(self._waiters) >= self.max_queue:
            raise _full(self.limit, self.max_queue)
        waiter = ticket()
        self._waiters.append(waiter)
        return waiter

    def leave(self) -> None:
        """Free a slot: to the oldest waiter still waiting, else back to the pool."""
        while self._waiters:
            if self._wake(self._waiters.popleft()):
                return
        self.active -= 1

    def drop(self, waiter: T) -> None:
        """A waiter that gave up leaves the queue."""
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass


def _set_event(event: threading.Event) -> bool:
    event.set()
    return True


def _set_future(fut: asyncio.Future[None]) -> bool:
    if fut.done():
        return False
    fut.set_result(None)
    return True


class ThreadGate(Gate[threading.Event]):
    def __init__(self, limit: int, max_queue: int | None = None, queue_timeout: float | None = None) -> None:
        super().__init__(limit, max_queue, queue_timeout, _set_event)
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            ticket = self.enter(threading.Event)
        if ticket is None:
            return
        start = time.monotonic()
        if ticket.wait(self.queue_timeout):
            return  # the releaser handed its slot over
        with self._lock:
            if ticket.is_set():  # handed over just as the wait ended
                return
            self.drop(ticket)
        raise _timed_out(time.monotonic() - start)

    def release(self) -> None:
        with self._lock:
            self.leave()


class TaskGate(Gate["asyncio.Future[None]"]):
    def __init__(self, limit: int, max_queue: int | None = None, queue_timeout: float | None = None) -> None:
        super().__init__(limit, max_queue, queue_timeout, _set_future)

    async def acquire(self) -> None:
        fut = self.enter(asyncio.get_running_loop().create_future)
        if fut is None:
            return
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
            self.drop(fut)
            raise _timed_out(time.monotonic() - start) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot arrived as we were cancelled: pass it on
            else:
                self.drop(fut)
            raise

    def release(self) -> None:
        self.leave()
