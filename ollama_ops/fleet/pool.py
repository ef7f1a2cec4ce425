"""The upstream pool of a gateway over several Ollama hosts: polling, breakers, slot leases and routing.

Every `poll_interval` seconds each host that is in gets `GET /api/version`, `/api/tags` and `/api/ps` (what is
installed and loaded); a host whose breaker is open is probed (the same three requests) once its cooldown has
passed, and a good answer puts it back. A request takes a slot with `acquire(model)`: routing ranks the eligible
hosts (`core.gateway.routing.preference`), the slot store (in-process, or Redis leases shared by every replica)
takes the first that really has a free slot, and while all are full the request waits for a slot to be freed
(woken by the release, or at the latest every `recheck` seconds: a dead replica's leases expire silently).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ollama_ops.core.gateway.breaker import Breaker
from ollama_ops.core.gateway.hoststate import HostPoll, host_poll
from ollama_ops.core.gateway.routing import DOWN, MISSING, HostView, preference

if TYPE_CHECKING:
    from ollama_ops.gateway.upstream import Upstream  # the streaming layer: imported where a pool is built


class NoHost(Exception):
    """No host can take this model: `verdict` is "missing" (no host that is up has it) or "down"."""

    def __init__(self, verdict: str, model: str) -> None:
        super().__init__(verdict)
        self.verdict, self.model = verdict, model


class SlotWaitExpired(Exception):
    pass


class PoolDraining(Exception):
    """The replica is stopping (SIGTERM): a request still waiting for a slot is refused (503)."""


@dataclass(eq=False)
class Host:
    url: str
    slots: int
    upstream: Upstream
    breaker: Breaker = field(default_factory=Breaker)
    poll: HostPoll | None = None
    polled_at: float | None = None  # monotonic time of the last good poll
    error: str | None = None  # why the last poll failed
    in_flight: int = 0  # the shared count, as last seen
    requests: int = 0
    failures: int = 0

    @property
    def up(self) -> bool:
        return self.breaker.up and self.poll is not None

    def view(self) -> HostView:
        poll = self.poll or HostPoll()
        return HostView(self.url, self.slots, self.in_flight, self.up, poll.installed, poll.loaded_names)


class HostPool:
    def __init__(self, specs: Sequence[tuple[str, int]], slots, *, connect_timeout: float = 3.0,
                 idle_timeout: float = 300.0, poll_interval: float = 2.0, poll_timeout: float = 2.0,
                 breaker_cooldown: float = 1.0, recheck: float = 0.1, clock=time.monotonic) -> None:
        from ollama_ops.gateway.upstream import Upstream

        self.hosts = [Host(url, slots_, Upstream(url, connect_timeout=connect_timeout, idle_timeout=idle_timeout),
                           Breaker(cooldown=breaker_cooldown, max_cooldown=max(breaker_cooldown, 30.0)))
                      for url, slots_ in specs]
        self.by_url = {h.url: h for h in self.hosts}
        self.slots = slots  # LocalSlots | RedisSlots
        self.poll_interval, self.poll_timeout, self.recheck = poll_interval, poll_timeout, recheck
        self.clock = clock
        self._freed = asyncio.Condition()
        self._tasks: list[asyncio.Task] = []
        self.waiting = 0
        self.draining = False

    @property
    def total_slots(self) -> int:
        return sum(h.slots for h in self.hosts)

    @property
    def any_up(self) -> bool:
        return any(h.up for h in self.hosts)

    # -- life cycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        for host in self.hosts:
            await host.upstream.start()
        await asyncio.gather(*(self.poll_host(h) for h in self.hosts))
        self._tasks.append(asyncio.create_task(self._poll_loop()))
        channel = getattr(self.slots, "freed_channel", None)
        if channel is not None:
            self._tasks.append(asyncio.create_task(self._listen_freed(channel)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for host in self.hosts:
            await host.upstream.close()

    # -- polling --------------------------------------------------------------------------------------------
    async def _get_json(self, host: Host, path: str):
        return await host.upstream.get_json(path)

    async def poll_host(self, host: Host) -> bool:
        """Read the host's version, installed and loaded models; a failure counts against its breaker."""
        try:
            async with asyncio.timeout(self.poll_timeout):
                version, tags, ps = await asyncio.gather(self._get_json(host, "/api/version"),
                                                         self._get_json(host, "/api/tags"),
                                                         self._get_json(host, "/api/ps"))
        except (TimeoutError, OSError, ValueError, Exception) as exc:  # noqa: B014 - any failure is the host's
            host.error = f"{type(exc).__name__}: {exc}"[:200]
            host.breaker.failure(self.clock())
            return False
        host.poll, host.polled_at, host.error = host_poll(version, tags, ps), self.clock(), None
        was_up = host.breaker.up
        host.breaker.success()
        if not was_up:
            await self._notify()  # a host came back: waiting requests may go there
        return True

    async def _poll_loop(self) -> None:
        tick = min(0.25, self.poll_interval)
        while True:
            await asyncio.sleep(tick)
            now = self.clock()
            due = [h for h in self.hosts
                   if (h.breaker.up and (h.polled_at is None or now - h.polled_at >= self.poll_interval))
                   or h.breaker.probe_due(now)]
            if due:
                await asyncio.gather(*(self.poll_host(h) for h in due))
            with contextlib.suppress(Exception):  # the shared counts, for routing and metrics
                counts = await self.slots.in_flight([h.url for h in self.hosts])
                for host in self.hosts:
                    host.in_flight = counts.get(host.url, host.in_flight)

    async def _listen_freed(self, channel: str) -> None:
        """Redis: wake local waiters whenever any replica frees a slot."""
        while True:
            pubsub = self.slots.redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        await self._notify()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _notify(self) -> None:
        async with self._freed:
            self._freed.notify_all()

    # -- slots ----------------------------------------------------------------------------------------------
    def views(self) -> list[HostView]:
        return [h.view() for h in self.hosts]

    async def acquire(self, model: str, *, exclude: Sequence[str] = (), timeout: float = 120.0):
        """(host, lease) for a request for `model`; waits while every eligible host is full. Raises NoHost when
        no host that is up has the model, SlotWaitExpired after `timeout` seconds."""
        deadline = self.clock() + timeout
        waited = False
        try:
            while True:
                if self.draining:
                    raise PoolDraining()
                order = preference(self.views(), model, exclude=exclude)
                if not order:
                    up = [h for h in self.hosts if h.up and h.url not in exclude]
                    raise NoHost(MISSING if up else DOWN, model)
                lease, counts = await self.slots.try_acquire([(u, self.by_url[u].slots) for u in order])
                for url, n in counts.items():
                    self.by_url[url].in_flight = n
                if lease is not None:
                    host = self.by_url[lease.host]
                    host.requests += 1
                    return host, lease
                left = deadline - self.clock()
                if left <= 0:
                    raise SlotWaitExpired()
                if not waited:
                    waited = True
                    self.waiting += 1
                async with self._freed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._freed.wait(), min(self.recheck, left))
        finally:
            if waited:
                self.waiting -= 1

    def drain(self) -> None:
        """Stop handing out slots: every waiting request wakes and is refused (in-flight ones go on)."""
        self.draining = True
        asyncio.get_running_loop().create_task(self._notify())

    async def release(self, host: Host, lease) -> None:
        try:
            await self.slots.release(lease)
        finally:
            host.in_flight = max(0, host.in_flight - 1)
            await self._notify()

    def any_host(self, model: str | None = None) -> Host | None:
        """For requests that take no slot (listings, show, pull): an up host that has `model` when one is named
        and some host has it, else the first up host."""
        up = [h for h in self.hosts if h.up]
        if model:
            order = preference(self.views(), model)
            if order:
                return self.by_url[order[0]]
        return up[0] if up else None
