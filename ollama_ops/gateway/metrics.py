"""Prometheus metrics, all named `sollama_gateway_*`, in a registry of the gateway's own (not the process-wide
default, so two gateways in one test process do not collide)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, generate_latest

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


class Metrics:
    def __init__(self, *, queue_depth: Callable[[], float], in_flight: Callable[[], float],
                 slots: Callable[[], list[tuple[str, int]]] = list) -> None:
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
        depth = Gauge("sollama_gateway_queue_depth", "Requests waiting for a slot", registry=r)
        depth.set_function(queue_depth)
        flight = Gauge("sollama_gateway_in_flight", "Requests holding an upstream slot", registry=r)
        flight.set_function(in_flight)
        self.upstream_up = Gauge("sollama_gateway_upstream_up", "1 when the upstream answered its last probe",
                                 ["upstream"], registry=r)
        r.register(_SlotsCollector(slots))

    def render(self) -> bytes:
        return generate_latest(self.registry)
