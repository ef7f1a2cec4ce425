"""Prometheus metrics, all named `sollama_gateway_*`, in a registry of the gateway's own (not the process-wide
default, so two gateways in one test process do not collide).

With `serve --workers N` each worker is its own process, so a scrape reaches one of them; there the metrics are
prometheus_client's multiprocess mode (`multiprocess_dir`: the supervisor's private directory, named by
PROMETHEUS_MULTIPROC_DIR in every worker's environment before prometheus_client is imported). Then:
- counters and histograms live in each worker's mmap files and a scrape sums them over the workers (exact);
- the queue-depth and in-flight gauges (a worker reads them from its admission at scrape time, which another
  process cannot) are written by each worker into `livesum` gauge files every SAMPLE_S seconds and by the worker
  that answers the scrape just before it reads the files: the sum over the workers, each as of at most SAMPLE_S
  ago (the answering one exact), off the request path;
- the collectors added with `add_collector` (the upstream's slots, the fleet's per-host view) are read from the
  answering worker, except their counters, which each worker mirrors into its files at the same sampling (so
  they too are summed over the workers). The per-host gauges already describe the whole fleet from the shared
  state (Redis), so one worker's view is the gateway's.
With one worker none of this exists: no files, no sampling, the set_function gauges of one registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, generate_latest

SAMPLE_S = 0.5  # seconds between a worker's writes of its gauges and counters to its files (--workers N only)

# Seconds; fine at the low end, where a gateway's own overhead and a small model's first token live.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

NAMES = (
    "sollama_gateway_requests_total",
    "sollama_gateway_tokens_total",
    "sollama_gateway_request_duration_seconds",
    "sollama_gateway_ttft_seconds",
    "sollama_gateway_queue_wait_seconds",
    "sollama_gateway_queue_depth",
    "sollama_gateway_in_flight",
    "sollama_gateway_slots",
    "sollama_gateway_upstream_up",
    "sollama_gateway_rejected_total",
)


class _SlotsCollector:
    """`sollama_gateway_slots{upstream}`: each upstream's slots, read at scrape time (a fleet's hosts can change)."""

    def __init__(self, slots: Callable[[], list[tuple[str, int]]]) -> None:
        self.slots = slots

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("sollama_gateway_slots", "Requests the gateway sends an upstream at once (its "
                                   "slots); compare with sollama_gateway_in_flight", labels=["upstream"])
        for upstream, slots in self.slots():
            family.add_metric([upstream], slots)
        yield family


class _Gauges:
    """The gauge families of a collector, as the answering worker sees them (its counters come from the files)."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        return (family for family in self.collector.collect() if family.type != "counter")


class Metrics:
    def __init__(self, *, queue_depth: Callable[[], float], in_flight: Callable[[], float],
                 slots: Callable[[], list[tuple[str, int]]] = list, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("sollama_gateway_requests", "Requests answered, by key, model, route and status code",
                                ["key", "model", "route", "code"], registry=r)
        self.tokens = Counter("sollama_gateway_tokens", "Tokens reported by the upstream, by key, model and kind "
                              "(prompt or output)", ["key", "model", "kind"], registry=r)
        self.duration = Histogram("sollama_gateway_request_duration_seconds", "Request arrival to the last byte "
                                  "sent, by route", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("sollama_gateway_ttft_seconds", "Request arrival to the first response byte sent, by "
                              "route", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("sollama_gateway_queue_wait_seconds", "Time waiting for an upstream slot",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("sollama_gateway_rejected", "Requests refused before reaching the upstream, by "
                                "reason", ["reason"], registry=r)
        self.multiprocess_dir = multiprocess_dir
        self.upstream_up = Gauge("sollama_gateway_upstream_up", "1 when the upstream answered its last probe",
                                 ["upstream"], registry=r, multiprocess_mode="livemax")
        self._collectors: list[Any] = []  # add_collector's, mirrored into the files (multiprocess mode)
        self._mirrors: dict[str, Counter] = {}
        self._mirrored: dict[tuple[str, tuple[str, ...]], float] = {}
        self._timer: asyncio.TimerHandle | None = None
        if multiprocess_dir is None:
            depth = Gauge("sollama_gateway_queue_depth", "Requests waiting for a slot", registry=r)
            depth.set_function(queue_depth)
            flight = Gauge("sollama_gateway_in_flight", "Requests holding an upstream slot", registry=r)
            flight.set_function(in_flight)
            self.scrape = r
        else:
            from prometheus_client.multiprocess import MultiProcessCollector

            depth = Gauge("sollama_gateway_queue_depth", "Requests waiting for a slot", registry=r,
                          multiprocess_mode="livesum")
            flight = Gauge("sollama_gateway_in_flight", "Requests holding an upstream slot", registry=r,
                           multiprocess_mode="livesum")
            self._gauges = ((depth, queue_depth), (flight, in_flight))
            self.scrape = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(self.scrape, str(multiprocess_dir))
        self.add_collector(_SlotsCollector(slots))
        # labelled children, looked up once: `labels()` validates and locks on every call
        self._requests: dict[tuple[str, str, str, str], Any] = {}
        self._tokens: dict[tuple[str, str, str], Any] = {}
        self._by_route: dict[str, tuple[Any, Any]] = {}

    def add_collector(self, collector: Any) -> None:
        """A collector read at scrape time (in multiprocess mode: its gauges from the answering worker, its counters
        summed over the workers' files)."""
        if self.multiprocess_dir is None:
            self.registry.register(collector)
        else:
            self._collectors.append(collector)
            self.scrape.register(_Gauges(collector))

    # -- multiprocess mode (`serve --workers N`) ------------------------------------------------------------
    def start(self) -> None:
        """Begin writing this worker's gauges and mirrored counters to its files every SAMPLE_S (multiprocess
        mode; needs the running loop); nothing with one worker."""
        if self.multiprocess_dir is not None and self._timer is None:
            self._tick()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.multiprocess_dir is not None:
            self.sample()

    def _tick(self) -> None:
        self.sample()
        self._timer = asyncio.get_running_loop().call_later(SAMPLE_S, self._tick)

    def sample(self) -> None:
        """Write this worker's queue depth and in-flight count, and its collectors' counters (by their growth
        since the last sample), to its files."""
        if self.multiprocess_dir is None:
            return
        for gauge, read in self._gauges:
            gauge.set(read())
        for collector in self._collectors:
            for family in collector.collect():
                if family.type == "counter":
                    self._mirror(family)

    def _mirror(self, family: Metric) -> None:
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            names = tuple(sorted(sample.labels))
            counter = self._mirrors.get(family.name)
            if counter is None:  # registry=None: it lives in this worker's files only
                counter = self._mirrors[family.name] = Counter(family.name, family.documentation, names,
                                                               registry=None)
            values = tuple(sample.labels[n] for n in names)
            child = counter.labels(*values) if names else counter  # a series at 0 too, as the collector shows it
            seen = self._mirrored.get((family.name, values), 0.0)
            if sample.value > seen:
                child.inc(sample.value - seen)
                self._mirrored[(family.name, values)] = sample.value

    def request_done(self, key: str, model: str, route: str, code: str, duration_s: float, ttft_s: float | None,
                     prompt_tokens: int, output_tokens: int) -> None:
        """Count one finished request: its code, duration, TTFT and tokens."""
        child = self._requests.get((key, model, route, code))
        if child is None:
            child = self._requests[(key, model, route, code)] = self.requests.labels(key, model, route, code)
        child.inc()
        timing = self._by_route.get(route)
        if timing is None:
            timing = self._by_route[route] = (self.duration.labels(route), self.ttft.labels(route))
        timing[0].observe(duration_s)
        if ttft_s is not None:
            timing[1].observe(ttft_s)
        if prompt_tokens:
            self._token_child(key, model, "prompt").inc(prompt_tokens)
        if output_tokens:
            self._token_child(key, model, "output").inc(output_tokens)

    def _token_child(self, key: str, model: str, kind: str) -> Any:
        child = self._tokens.get((key, model, kind))
        if child is None:
            child = self._tokens[(key, model, kind)] = self.tokens.labels(key, model, kind)
        return child

    def render(self) -> bytes:
        """The exposition text: this process's metrics, or with workers the whole gateway's."""
        if self.multiprocess_dir is not None:
            self.sample()
        return generate_latest(self.scrape)
