"""Warm-up and cool-down of a bench run (pure): `--warmup` / `--cooldown` as a count, a time or a percentage, and
the timeline that gives each request its phase when it is sent.

A run is one continuous load: warm-up requests, then the measured ones, then cool-down requests, all under the
same load shape (the same concurrency, the same arrival schedule), so the measured requests start on a warm server
and end before the load drains. Only the measured ("run") requests count in the figures and the gate; the others
are stored with their phase and marked in the timelines.

Sizes: `10` (requests), `5s` / `2m` (time: requests *sent* in that span), `10%` (a share of the measured phase:
of `--requests`, or of `--duration`). A trace's timeline is the trace itself, so there the phases come out of
the trace (`trace_counts`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

PhaseName = Literal["warmup", "run", "cooldown"]
PHASES: tuple[PhaseName, ...] = ("warmup", "run", "cooldown")
PHASE_LABELS = {"warmup": "warm-up", "run": "measured", "cooldown": "cool-down"}


@dataclass(frozen=True)
class PhaseSize:
    """How long a warm-up or cool-down lasts: `count` requests, `seconds` of sending, or `percent` of the
    measured phase (exactly one set; all None or zero = no such phase)."""

    count: int | None = None
    seconds: float | None = None
    percent: float | None = None

    def __bool__(self) -> bool:
        return bool(self.count or self.seconds or self.percent)

    def describe(self) -> int | str:
        """As stored with a run's load: an int for a count (what older runs stored), '5s' or '10%' otherwise."""
        if self.seconds is not None:
            return f"{self.seconds:g}s"
        if self.percent is not None:
            return f"{self.percent:g}%"
        return self.count or 0

    def resolve(self, requests: int | None, duration: float | None) -> PhaseSize:
        """A percentage as a count of `requests` or seconds of `duration` (the measured phase's size)."""
        if self.percent is None:
            return self
        if requests is not None:
            return PhaseSize(count=math.ceil(requests * self.percent / 100 - 1e-9))
        if duration is not None:
            return PhaseSize(seconds=duration * self.percent / 100)
        return PhaseSize(count=0)


NO_PHASE = PhaseSize()


def as_phase(value: PhaseSize | int | None) -> PhaseSize:
    """A count given as a plain int (the config's `bench.warmup`, older callers) → PhaseSize."""
    if isinstance(value, PhaseSize):
        return value
    return PhaseSize(count=int(value or 0))


def parse_phase(text: str | int) -> PhaseSize:
    """'10' → 10 requests, '5s' / '1m30s' → seconds, '10%' → a share. ValueError saying what is wrong."""
    from ollama_ops.core.units import parse_duration

    raw = str(text).strip()
    if raw.endswith("%"):
        try:
            value = float(raw[:-1])
        except ValueError:
            raise ValueError(f"is not a count, a time or a percentage: {raw!r}") from None
        return PhaseSize(percent=value)
    try:
        return PhaseSize(count=int(raw))
    except ValueError:
        pass
    try:
        seconds = parse_duration(raw)
    except ValueError:
        raise ValueError(f"is not a count (10), a time (5s) or a percentage (10%): {raw!r}") from None
    if raw.replace(".", "", 1).lstrip("+-").isdigit():  # a bare non-integer number: neither a count nor a time
        raise ValueError(f"is not a count (10), a time (5s) or a percentage (10%): {raw!r}")
    return PhaseSize(seconds=seconds)


def trace_counts(offsets: Sequence[float], warmup: PhaseSize, cooldown: PhaseSize) -> tuple[int, int]:
    """(warm-up, cool-down) request counts of a trace: the first / last N entries, the entries scheduled in its
    first / last T seconds, or a percentage of its entries."""
    n = len(offsets)

    def count(size: PhaseSize, head: bool) -> int:
        if size.percent is not None:
            return math.ceil(n * size.percent / 100 - 1e-9)
        if size.seconds is not None and n:
            if head:
                return sum(1 for o in offsets if o < offsets[0] + size.seconds)
            return sum(1 for o in offsets if o > offsets[-1] - size.seconds)
        return size.count or 0

    return count(warmup, True), count(cooldown, False)


class PhaseTimeline:
    """Gives each request its phase when it is sent, in send order: warm-up until its count or time is used up,
    then the measured phase (`requests` or `duration`), then cool-down; `next` answers None once all are done
    (stop sending). `now` is seconds since the run began (the scheduled time in an open loop)."""

    def __init__(self, warmup: PhaseSize, requests: int | None, duration: float | None,
                 cooldown: PhaseSize) -> None:
        run = PhaseSize(count=requests, seconds=duration) if requests is not None or duration is not None \
            else PhaseSize(count=None, seconds=math.inf)
        self._sizes = [warmup.resolve(requests, duration), run, cooldown.resolve(requests, duration)]
        self._i = 0
        self._sent = 0
        self._t0: float | None = None
        self.counts = [0, 0, 0]  # requests sent in each phase
        self.starts: list[float | None] = [None, None, None]  # `now` of each phase's first request

    @property
    def phase(self) -> PhaseName | None:
        """The phase the next request would be in, as far as known before asking (None: done)."""
        return PHASES[self._i] if self._i < 3 else None

    def next(self, now: float) -> PhaseName | None:
        while self._i < 3:
            size = self._sizes[self._i]
            if self._t0 is None:
                self._t0 = now
            if size.count is not None and size.seconds is None:
                more = self._sent < size.count
            elif size.seconds is not None and size.count is None:
                more = size.seconds > 0 and now - self._t0 < size.seconds
            elif size.count is not None and size.seconds is not None:
                more = self._sent < size.count and now - self._t0 < size.seconds
            else:
                more = False
            if more:
                self._sent += 1
                self.counts[self._i] += 1
                if self.starts[self._i] is None:
                    self.starts[self._i] = now
                return PHASES[self._i]
            self._i += 1
            self._sent = 0
            self._t0 = None
        return None
