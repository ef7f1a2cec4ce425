"""Request arrival schedules for an open-loop bench (pure).

A closed loop (`--concurrency N`) has no schedule: N workers each send the next request when their previous one
ends. An open loop (`--rate R`) sends requests at times fixed in advance, whether or not earlier ones finished:
Poisson arrivals (exponential gaps with mean 1/R, like real independent users) or constant gaps of exactly 1/R.
Both come from a seeded generator, so a seed reproduces the schedule.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import islice

ARRIVALS = ("poisson", "constant")


def arrival_offsets(rate: float, arrival: str = "poisson", seed: int | None = 0) -> Iterator[float]:
    """Endless send times in seconds from the start (the first request goes at 0).

    Raises ValueError for a non-positive rate or an unknown arrival kind.
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
    rng = random.Random(seed)
    t = 0.0
    i = 0
    while True:
        yield t
        if arrival == "constant":
            i += 1
            t = i / rate  # no accumulated float error over long runs
        else:
            t += rng.expovariate(rate)


def schedule(n: int, rate: float, arrival: str = "poisson", seed: int | None = 0) -> list[float]:
    """The first `n` send offsets of `arrival_offsets`."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    return list(islice(arrival_offsets(rate, arrival, seed), n))
