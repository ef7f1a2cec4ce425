"""`sollama status --fleet`: one view of the whole service: every upstream host of `gateway.upstreams` (health,
version, loaded models with size and expiry, in-flight / slots, free memory where sollama manages the daemon)
and, with `gateway.state`, every live gateway replica (address, in-flight, queue depth)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ollama_ops.core.gateway.hoststate import host_poll


@dataclass
class FleetModel:
    name: str
    size: int
    expires_in_s: float | None


@dataclass
class HostMemory:
    """Memory of a host whose daemon sollama manages (this machine's, started by `sollama start`): the same facts
    as `sollama status` and `sollama memory` (psutil RAM, nvidia-smi VRAM, `memory.reserve`)."""

    budget: int  # RAM − reserve + VRAM: what the daemon may use (services.memory.machine_budget)
    used: int  # /api/ps size of the models loaded on the host
    free: int  # budget − used (never below 0): what more models may take
    total_ram: int
    available_ram: int  # RAM available now (psutil), for everything on the machine


@dataclass
class FleetHost:
    url: str
    slots: int
    up: bool
    version: str | None = None
    latency_s: float | None = None
    installed: int = 0
    loaded: list[FleetModel] = field(default_factory=list)
    in_flight: int | None = None  # from the shared state (None without it)
    error: str | None = None
    managed: bool = False  # sollama started this daemon (verified pid record on this machine)
    memory: HostMemory | None = None  # only where managed: other hosts' memory is not ours to read


@dataclass
class FleetReplica:
    id: str
    address: str
    pid: int
    in_flight: int
    queued: int
    seen_s_ago: float


@dataclass
class FleetReport:
    checked_at: str
    state: str  # "redis" | "in-process"
    hosts: list[FleetHost]
    replicas: list[FleetReplica] | None  # None: no shared state to list them from
    queue_depth: int | None
    state_error: str | None = None

    @property
    def hosts_up(self) -> int:
        return sum(1 for h in self.hosts if h.up)


def _expires_in(text: str, now: datetime) -> float | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when - now).total_seconds()


def probe_host(url: str, slots: int, timeout: float) -> FleetHost:
    import httpx

    try:
        with httpx.Client(base_url=url, timeout=timeout, trust_env=False) as client:
            t0 = time.perf_counter()
            version = client.get("/api/version")
            latency = time.perf_counter() - t0
            tags, ps = client.get("/api/tags"), client.get("/api/ps")
            for resp in (version, tags, ps):
                resp.raise_for_status()
            poll = host_poll(version.json(), tags.json(), ps.json())
    except (httpx.HTTPError, ValueError) as exc:
        return FleetHost(url, slots, False, error=f"{type(exc).__name__}: {exc}"[:200])
    now = datetime.now(UTC)
    return FleetHost(url, slots, True, poll.version or None, latency, len(poll.installed),
                     [FleetModel(m.name, m.size, _expires_in(m.expires_at, now)) for m in poll.loaded])


def managed_pid(url: str) -> int | None:
    """The pid of the daemon at `url` when sollama manages it: an address on this machine, and the pid record
    about its port names a live `ollama serve` (pid, creation time and command line verified)."""
    from ollama_ops.core.hosts import parse_host
    from ollama_ops.edges import process

    address = parse_host(url)
    if not address.is_local:
        return None
    record = process.read_pidfile()
    if record is None or not record.host or parse_host(record.host).port != address.port:
        return None
    proc = process.verify(record)
    return proc.pid if proc is not None else None


def add_memory(hosts: list[FleetHost], settings: Any) -> None:
    """Memory facts for each host sollama manages (the machine is read once, and only when there is one)."""
    managed = [h for h in hosts if managed_pid(h.url) is not None]
    if not managed:
        return
    from ollama_ops.edges.system import memory_facts
    from ollama_ops.services.memory import machine_budget

    budget, mem = machine_budget(settings), memory_facts()
    for host in managed:
        used = sum(m.size for m in host.loaded)
        host.managed = True
        host.memory = HostMemory(budget.total, used, max(0, budget.total - used), mem.total, mem.available)


def fleet_status(settings: Any, *, timeout: float = 3.0) -> FleetReport:
    """Probe every host (in parallel) and read the shared state."""
    from ollama_ops.core.hosts import parse_host
    from ollama_ops.gateway.settings import parse_upstreams

    gw = settings.gateway
    default_slots = gw.slots or settings.server.num_parallel or 1
    specs = parse_upstreams(list(gw.upstreams or []), default_slots) or [
        (parse_host(gw.upstream or settings.server.host).base_url, default_slots)]
    with ThreadPoolExecutor(max_workers=min(16, len(specs))) as pool:
        hosts = list(pool.map(lambda spec: probe_host(spec[0], spec[1], timeout), specs))
    add_memory(hosts, settings)
    report = FleetReport(datetime.now(UTC).isoformat(timespec="seconds"), "redis" if gw.state else "in-process",
                         hosts, None, None)
    if gw.state:
        try:
            from ollama_ops.fleet.replicas import live_sync
            from ollama_ops.fleet.slots import in_flight_sync

            counts = in_flight_sync(gw.state, [h.url for h in hosts])
            for host in hosts:
                host.in_flight = counts.get(host.url, 0)
            now = time.time()
            report.replicas = [FleetReplica(r.id, r.address, r.pid, r.in_flight, r.queued, max(0.0, now - r.seen))
                               for r in live_sync(gw.state)]
            report.queue_depth = sum(r.queued for r in report.replicas)
        except Exception as exc:  # noqa: BLE001 - Redis away: the hosts are still worth showing
            report.state_error = f"{type(exc).__name__}: {exc}"[:200]
    return report
