"""The fleet inside one gateway replica: the host pool, the shared state (Redis when `gateway.state` names it),
the replica's heartbeat, the key-change watcher, per-host metrics, and the forwarding of a request to a host with
retry-once-before-the-first-byte. `Fleet` is a `gateway.dispatch.Dispatcher`: the composition root
(`gateway.compose`) hands it to the gateway; the gateway's modules never import this one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from ollama_ops.core.gateway import dialect
from ollama_ops.core.gateway.breaker import host_failure, retry_once
from ollama_ops.fleet.pool import HostPool, NoHost, PoolDraining, SlotWaitExpired
from ollama_ops.fleet.slots import LocalSlots
from ollama_ops.gateway.exchange import Exchange, send_error

if TYPE_CHECKING:
    from ollama_ops.gateway.dispatch import Attempt
    from ollama_ops.gateway.runtime import Gateway


class HostCollector:
    """Per-host Prometheus gauges, read from the pool at scrape time."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        up = GaugeMetricFamily("sollama_gateway_host_up", "1 while the host's breaker is closed and it answered its "
                               "last poll", labels=["host"])
        flight = GaugeMetricFamily("sollama_gateway_host_in_flight", "Requests holding a slot on the host, all "
                                   "replicas together (as last seen)", labels=["host"])
        slots = GaugeMetricFamily("sollama_gateway_host_slots", "The host's slots", labels=["host"])
        loaded = GaugeMetricFamily("sollama_gateway_host_loaded_model_bytes", "Models loaded on the host "
                                   "(/api/ps size)", labels=["host", "model"])
        requests = CounterMetricFamily("sollama_gateway_host_requests", "Requests this replica sent to the host",
                                       labels=["host"])
        ejections = CounterMetricFamily("sollama_gateway_host_ejections", "Times the host's breaker opened",
                                        labels=["host"])
        for host in self.fleet.pool.hosts:
            up.add_metric([host.url], 1 if host.up else 0)
            flight.add_metric([host.url], host.in_flight)
            slots.add_metric([host.url], host.slots)
            ejections.add_metric([host.url], host.breaker.ejections)
            requests.add_metric([host.url], host.requests)
            for model in (host.poll.loaded if host.poll else ()):
                loaded.add_metric([host.url, model.name], model.size)
        retries = CounterMetricFamily("sollama_gateway_retries", "Requests retried on another host after a "
                                      "failure before their first byte")
        retries.add_metric([], self.fleet.retries)
        yield from (up, flight, slots, loaded, requests, ejections, retries)


class Fleet:
    """The gateway's dispatcher over `gateway.upstreams` (see `gateway.dispatch.Dispatcher`)."""

    def __init__(self, gw: Gateway) -> None:
        config = gw.config
        self.gw = gw
        self.replica = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.state_url = config.state if config.state and config.state.startswith(("redis://", "rediss://",
                                                                                   "unix://")) else None
        if self.state_url:
            from ollama_ops.fleet.replicas import RedisReplicas
            from ollama_ops.fleet.revocation import RedisRevocations
            from ollama_ops.fleet.slots import RedisSlots

            slots: LocalSlots | RedisSlots = RedisSlots(self.state_url, ttl=config.lease_ttl, replica=self.replica)
            self.replicas: Any = RedisReplicas(self.state_url, ttl=max(3.0, config.lease_ttl))
            self.revocations: Any = RedisRevocations(self.state_url)
        else:
            slots, self.replicas, self.revocations = LocalSlots(), None, None
        specs = config.upstreams or [(config.upstream, config.slots)]
        self.pool = HostPool(specs, slots, connect_timeout=config.connect_timeout, idle_timeout=config.idle_timeout,
                             poll_interval=config.poll_interval)
        self.retries = 0
        self._tasks: list[asyncio.Task] = []
        gw.metrics.add_collector(HostCollector(self))

    async def start(self) -> None:
        await self.pool.start()
        if self.replicas is not None:
            await self._beat()
            self._tasks.append(asyncio.create_task(self._beat_loop()))
        if self.revocations is not None:
            self._tasks.append(asyncio.create_task(self.revocations.watch(self._keys_changed)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.replicas is not None:
            with contextlib.suppress(Exception):
                await self.replicas.leave(self.replica)
            await self.replicas.close()
        if self.revocations is not None:
            await self.revocations.close()
        await self.pool.stop()
        await self.pool.slots.close()

    def _keys_changed(self) -> None:
        with contextlib.suppress(Exception):  # a broken store keeps the last good keys
            self.gw.keyring.reload()

    def info(self):
        from ollama_ops.fleet.replicas import ReplicaInfo

        adm = self.gw.admission
        return ReplicaInfo(self.replica, self.gw.config.listen_url, os.getpid(), self.gw.started,
                           adm.in_flight, adm.queued + self.pool.waiting, time.time())

    async def _beat(self) -> None:
        await self.replicas.beat(self.info())

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                await self._beat()

    async def queue_depth(self) -> int:
        """Requests waiting in every live replica (this one's own count when there is no shared state)."""
        if self.replicas is None:
            return self.gw.admission.queued + self.pool.waiting
        with contextlib.suppress(Exception):
            await self._beat()
            return await self.replicas.queue_depth()
        return self.gw.admission.queued + self.pool.waiting

    def note(self, upstream, up: bool) -> None:
        host = self.pool.by_url.get(getattr(upstream, "base_url", ""))
        if host is None:
            return
        if up:
            host.breaker.success()
        else:
            host.failures += 1
            host.breaker.failure(self.pool.clock())

    def slots_by_upstream(self) -> list[tuple[str, int]]:
        return [(h.url, h.slots) for h in self.pool.hosts]

    def drain(self) -> int:
        waiting = self.pool.waiting
        self.pool.drain()
        return waiting

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready while at least one host is in."""
        hosts = {h.url: h.up for h in self.pool.hosts}
        return any(hosts.values()), {"hosts": hosts, "hosts_up": sum(hosts.values())}

    async def queue_info(self) -> dict[str, Any]:
        """Every replica's waiting requests together (shared state), and the hosts."""
        return {"fleet_depth": await self.queue_depth(),
                "hosts": [{"url": h.url, "up": h.up, "in_flight": h.in_flight, "slots": h.slots}
                          for h in self.pool.hosts]}

    async def listings(self, path: str) -> list[Any] | None:
        """Every healthy host's answer to a listing, in `gateway.upstreams` order, to merge into one (a host that
        fails to answer is left out, and a refused connection counts against its breaker); None with a single
        host (its answer is relayed as it is) or when no host answered."""
        if len(self.pool.hosts) < 2:
            return None
        hosts = [h for h in self.pool.hosts if h.up]
        answers = await asyncio.gather(*(self._listing(h, path) for h in hosts))
        docs = [doc for doc in answers if doc is not None]
        return docs or None

    async def _listing(self, host, path: str) -> Any:
        from ollama_ops.errors import ServerUnreachable, SollamaError

        try:
            async with asyncio.timeout(self.pool.poll_timeout):
                return await host.upstream.get_json(path)
        except ServerUnreachable:  # refused: the host's breaker hears of it
            self.note(host.upstream, False)
        except (TimeoutError, SollamaError, OSError, ValueError):  # slow, broke, not 200, not JSON: left out
            pass
        return None

    # -- forwarding -----------------------------------------------------------------------------------------
    async def forward(self, ex: Exchange, send, attempt: Attempt) -> None:
        """An inference request: a slot on the best host, retried once on another host when it failed before
        its first byte (never after)."""
        gw = self.gw
        tried: list[str] = []
        for number in (1, 2):
            t0 = time.perf_counter()
            try:
                host, lease = await self.pool.acquire(ex.model, exclude=tried, timeout=gw.config.max_wait)
            except NoHost as exc:
                if tried:
                    return await send_error(ex, send, 502, f"Ollama at {tried[-1]} failed and no other host can "
                                                           f"serve '{ex.model}'")
                if exc.verdict == "missing":
                    return await send_error(ex, send, 404, f"model '{ex.model}' not found on any upstream host")
                return await send_error(ex, send, 503, dialect.BUSY if ex.area == "api" else
                                        "server busy, please try again (no upstream host is up)",
                                        [(b"retry-after", b"1")])
            except PoolDraining:
                gw.metrics.rejected.labels("draining").inc()
                return await send_error(ex, send, 503, dialect.BUSY if ex.area == "api" else
                                        "server busy, please try again (draining)", [(b"retry-after", b"1")])
            except SlotWaitExpired:
                gw.metrics.rejected.labels("max_wait").inc()
                return await send_error(ex, send, 503, dialect.BUSY if ex.area == "api" else
                                        "server busy, please try again (max wait)", [(b"retry-after", b"1")])
            ex.queue_s += time.perf_counter() - t0
            try:
                failed = await attempt(host.upstream, number == 1)
            finally:
                await self.pool.release(host, lease)
            if failed is None:
                return
            status = int(failed) if failed.isdigit() else None
            error = None if status else failed
            if host_failure(status, error):
                self.note(host.upstream, False)
            tried.append(host.url)
            if not retry_once(number, False, status, error):
                break
            self.retries += 1
        # both attempts failed before a byte was sent: answer as the single-upstream gateway would
        return await send_error(ex, send, 502, f"Ollama at {tried[-1]} is unreachable ({failed})")

    async def forward_any(self, ex: Exchange, send, attempt: Attempt) -> None:
        """A request that takes no slot: a host that has the named model, else any host that is up."""
        host = self.pool.any_host(ex.model if ex.model != "-" else None)
        if host is None:
            return await send_error(ex, send, 503, "no upstream host is up", [(b"retry-after", b"1")])
        await attempt(host.upstream, False)
