"""Open-loop arrival schedules: Poisson and constant, reproducible from a seed."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.core.bench.arrivals import arrival_offsets, schedule


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_poisson_mean_gap_matches_rate(seed: int) -> None:
    rate = 8.0
    times = schedule(20_000, rate, "poisson", seed)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(1 / rate, rel=0.03)
    # exponential gaps: standard deviation equals the mean
    assert statistics.pstdev(gaps) == pytest.approx(1 / rate, rel=0.05)
    assert times[0] == 0.0


def test_poisson_is_reproducible_and_seed_dependent() -> None:
    assert schedule(50, 3.0, "poisson", 7) == schedule(50, 3.0, "poisson", 7)
    assert schedule(50, 3.0, "poisson", 7) != schedule(50, 3.0, "poisson", 8)


def test_constant_gaps_are_exact() -> None:
    times = schedule(1001, 4.0, "constant")
    assert times[:3] == [0.0, 0.25, 0.5]
    assert times[-1] == 250.0


@given(st.floats(0.01, 1000), st.integers(0, 2**32))
def test_offsets_never_decrease(rate: float, seed: int) -> None:
    times = schedule(200, rate, "poisson", seed)
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))


@pytest.mark.parametrize(("rate", "arrival"), [(0, "poisson"), (-1, "constant"), (1, "burst")])
def test_rejects_bad_arguments(rate: float, arrival: str) -> None:
    with pytest.raises(ValueError):
        next(arrival_offsets(rate, arrival))
