"""Which upstream host serves a request (pure): model-aware, least busy, never a host without the model.

Order: among hosts that are up (breaker closed) and have the model installed,
1. a host with the model already **loaded** and a free slot (no cold load), the least busy of them;
2. else the least busy host with a free slot (in-flight / slots; ties: fewer in flight, then the listed order);
3. else, when every eligible host's slots are full: wait (the request stays in the fair queue);
4. no eligible host at all: `missing` (no host that is up has the model) or `down` (no host is up).
A host without the model is never chosen: Ollama would answer 404 or, worse, start a pull.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ollama_ops.core.names import normalize_name

LOADED, LEAST_BUSY, WAIT, MISSING, DOWN = "loaded", "least-busy", "wait", "missing", "down"


def normalize_model(name: str) -> str:
    """One key per model, as Ollama matches names ("SmolLM2" and "smollm2:latest" are one model)."""
    name = name.strip()
    return normalize_name(name) if name else name


@dataclass(frozen=True)
class HostView:
    """What routing knows of one host at one instant."""

    name: str  # its base URL: the host's identity everywhere (metrics, leases, status)
    slots: int
    in_flight: int = 0
    up: bool = True
    installed: frozenset[str] = field(default_factory=frozenset)  # normalized names from /api/tags
    loaded: frozenset[str] = field(default_factory=frozenset)  # normalized names from /api/ps

    @property
    def free(self) -> int:
        return max(0, self.slots - self.in_flight)

    @property
    def busy(self) -> float:
        """In-flight per slot: the least-busy measure (a host with no slots counts as full)."""
        return self.in_flight / self.slots if self.slots > 0 else float("inf")

    def has(self, model: str) -> bool:
        return model in self.installed or model in self.loaded


@dataclass(frozen=True)
class Choice:
    verdict: str  # LOADED | LEAST_BUSY | WAIT | MISSING | DOWN
    host: str | None = None

    @property
    def chosen(self) -> bool:
        return self.host is not None


def _rank(item: tuple[int, HostView]) -> tuple[float, int, int]:
    i, h = item
    return (h.busy, h.in_flight, i)


def choose(hosts: Sequence[HostView], model: str, *, exclude: Iterable[str] = ()) -> Choice:
    """The host for one request for `model` (see the module doc). `exclude`: hosts already tried for this request
    (the retry goes elsewhere)."""
    wanted = normalize_model(model)
    skip = set(exclude)
    up = [(i, h) for i, h in enumerate(hosts) if h.up and h.name not in skip]
    if not up:
        return Choice(DOWN)
    eligible = [(i, h) for i, h in up if h.has(wanted)]
    if not eligible:
        return Choice(MISSING)
    free = [(i, h) for i, h in eligible if h.free > 0]
    if not free:
        return Choice(WAIT)
    warm = [item for item in free if wanted in item[1].loaded]
    if warm:
        return Choice(LOADED, min(warm, key=_rank)[1].name)
    return Choice(LEAST_BUSY, min(free, key=_rank)[1].name)


def preference(hosts: Sequence[HostView], model: str, *, exclude: Iterable[str] = ()) -> list[str]:
    """Every eligible host in the order routing prefers them: free with the model loaded, free, then full ones
    (least busy first within each group). The shared slot store takes the first that really has a free slot,
    so a view that is a moment old still never overfills a host; `choose` is this list's first entry."""
    wanted = normalize_model(model)
    skip = set(exclude)
    eligible = [(i, h) for i, h in enumerate(hosts) if h.up and h.name not in skip and h.has(wanted)]

    def group(item: tuple[int, HostView]) -> int:
        h = item[1]
        return 0 if h.free > 0 and wanted in h.loaded else 1 if h.free > 0 else 2

    return [h.name for _, h in sorted(eligible, key=lambda item: (group(item), *_rank(item)))]


def hosts_with(hosts: Sequence[HostView], model: str) -> list[str]:
    """The hosts that are up and have `model` installed (where a waiting request may later go)."""
    wanted = normalize_model(model)
    return [h.name for h in hosts if h.up and h.has(wanted)]
