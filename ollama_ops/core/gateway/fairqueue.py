"""Weighted fair ordering of waiting requests across keys (stride scheduling), FIFO within a key.

Each key with waiting requests has a *pass*: the virtual time at which it is next due. Serving a key advances
its pass by 1/priority, so a key of priority 2 is served twice as often as one of priority 1 while both wait.
A key that starts waiting joins at the current virtual time (never earlier), so a key that was idle cannot
claim a burst of "saved up" turns, and a key that floods cannot starve one that sends one request at a time:
the newcomer is served after at most one request of each other waiting key.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


@dataclass
class _Lane(Generic[T]):
    key: str
    weight: float
    pass_: float
    items: deque[T] = field(default_factory=deque)


class FairQueue(Generic[T]):
    """Waiting items per key; `pop()` returns the next one to serve. Items must be hashable and unique."""

    def __init__(self) -> None:
        self._lanes: dict[str, _Lane[T]] = {}
        self._where: dict[T, str] = {}
        self._vtime = 0.0
        self._seq = 0  # ties on pass go to the lane that became active first
        self._order: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, item: object) -> bool:
        return item in self._where

    def push(self, key: str, item: T, priority: float = 1.0) -> None:
        """Queue `item` for `key` (priority > 0; higher is served more often)."""
        if item in self._where:
            raise ValueError("item already queued")
        weight = max(float(priority), 1e-6)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key, weight, self._vtime)
            self._seq += 1
            self._order[key] = self._seq
        lane.weight = weight
        lane.items.append(item)
        self._where[item] = key

    def pop(self) -> T | None:
        """The next item to serve, or None when nothing waits."""
        if not self._lanes:
            return None
        lane = min(self._lanes.values(), key=lambda ln: (ln.pass_, self._order[ln.key]))
        item = lane.items.popleft()
        del self._where[item]
        self._vtime = max(self._vtime, lane.pass_)
        lane.pass_ += 1.0 / lane.weight
        if not lane.items:
            del self._lanes[lane.key]
            del self._order[lane.key]
        return item

    def remove(self, item: T) -> bool:
        """Take a waiting item out (its caller left or timed out); False if it was not waiting."""
        key = self._where.pop(item, None)
        if key is None:
            return False
        lane = self._lanes[key]
        lane.items.remove(item)
        if not lane.items:
            del self._lanes[key]
            del self._order[key]
        return True

    def depth_by_key(self) -> dict[str, int]:
        return {key: len(lane.items) for key, lane in self._lanes.items()}

    def key_of(self, item: T) -> str | None:
        return self._where.get(item)

    def items(self, key: str) -> Iterator[T]:
        lane = self._lanes.get(key)
        return iter(list(lane.items)) if lane else iter(())

    def clone(self) -> FairQueue[T]:
        """An independent copy (to list the serving order by popping it)."""
        other: FairQueue[T] = FairQueue()
        other._vtime, other._seq, other._order, other._where = self._vtime, self._seq, dict(self._order), dict(
            self._where)
        other._lanes = {k: _Lane(ln.key, ln.weight, ln.pass_, deque(ln.items)) for k, ln in self._lanes.items()}
        return other

    def drain(self) -> list[T]:
        """Remove and return every waiting item (shutdown)."""
        out = list(self._where)
        self._lanes.clear()
        self._where.clear()
        self._order.clear()
        return out
