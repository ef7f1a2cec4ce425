"""The statistics core: percentiles against hand-computed numpy-default values, and the bootstrap comparison."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.core.stats import (
    Change,
    bootstrap_change,
    bootstrap_ratio_change,
    compute,
    describe,
    min_samples,
    percentile,
    verdict,
)

# numpy.percentile(values, p) (linear, the default), computed by hand: h = (n-1)·p/100, interpolate x[h].
PERCENTILE_CASES = [
    ([5.0], 0, 5.0),
    ([5.0], 99, 5.0),
    ([1, 2], 50, 1.5),
    ([1, 2, 3, 4], 50, 2.5),
    ([1, 2, 3, 4], 90, 3.7),         # h = 2.7 → 3 + 0.7·1
    ([1, 2, 3, 4], 25, 1.75),        # h = 0.75
    ([10, 20, 30, 40, 50], 95, 48.0),  # h = 3.8 → 40 + 0.8·10
    ([3, 1, 2], 0, 1.0),
    ([3, 1, 2], 100, 3.0),
    ([15, 20, 35, 40, 50], 40, 29.0),  # h = 1.6 → 20 + 0.6·15
    (list(range(1, 101)), 99, 99.01),  # h = 98.01
    ([2, 2, 2, 7], 75, 3.25),        # h = 2.25 → 2 + 0.25·5
]


@pytest.mark.parametrize(("values", "p", "expected"), PERCENTILE_CASES)
def test_percentile_matches_numpy_default(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("p", [-1, 100.5])
def test_percentile_rejects_out_of_range(p: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0, 2.0], p)


def test_percentile_of_nothing_is_an_error_and_describe_is_none() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    assert describe([]) is None


def test_describe_summarises() -> None:
    d = describe([4.0, 1.0, 3.0, 2.0])
    assert d is not None
    assert (d.n, d.mean, d.min, d.max) == (4, 2.5, 1.0, 4.0)
    assert d.p50 == 2.5
    assert d.p90 == pytest.approx(3.7)
    assert d.p95 == pytest.approx(3.85)
    assert d.p99 == pytest.approx(3.97)


@pytest.mark.parametrize(("statistic", "expected"), [("median", 2.5), ("mean", 2.5), ("p90", 3.7), ("p0", 1.0)])
def test_compute_named_statistics(statistic: str, expected: float) -> None:
    assert compute([1.0, 2.0, 3.0, 4.0], statistic) == pytest.approx(expected)


def test_unknown_statistic_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown statistic"):
        bootstrap_change([1.0], [1.0], "mode")


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.lists(finite, min_size=1, max_size=60))
def test_p50_between_min_and_max(values: list[float]) -> None:
    d = describe(values)
    assert d is not None
    assert d.min <= d.p50 <= d.max
    tol = 1e-9 * max(1.0, abs(d.min), abs(d.max))
    assert d.min - tol <= d.mean <= d.max + tol


@given(st.lists(finite, min_size=1, max_size=60), st.floats(0, 100), st.floats(0, 100))
def test_percentile_is_monotone_in_p(values: list[float], p: float, q: float) -> None:
    lo, hi = sorted((p, q))
    assert percentile(values, lo) <= percentile(values, hi) + 1e-9 * max(1.0, abs(percentile(values, hi)))


# -- bootstrap -------------------------------------------------------------------------------------------------

def _lognormal(rng: random.Random, n: int, scale: float = 1.0, sigma: float = 0.1) -> list[float]:
    return [scale * rng.lognormvariate(math.log(0.2), sigma) for _ in range(n)]


@pytest.mark.parametrize("statistic", ["median", "mean", "p90"])
def test_a_ten_percent_regression_is_flagged(statistic: str) -> None:
    rng = random.Random(42)
    base = _lognormal(rng, 200)
    cand = _lognormal(rng, 200, scale=1.10)
    change = bootstrap_change(base, cand, statistic, seed=1)
    assert change.lo_pct <= change.point_pct <= change.hi_pct
    assert 5 < change.lo_pct < 10 < change.hi_pct, change
    assert verdict(change, 5.0, higher_is_better=False) == "regressed"
    # the same change for a throughput-like metric is an improvement
    assert verdict(change, 5.0, higher_is_better=True) == "improved"


def test_identical_distributions_are_no_change_in_95_percent_of_trials() -> None:
    verdicts = []
    for trial in range(40):
        rng = random.Random(1000 + trial)
        base = _lognormal(rng, 200, sigma=0.3)
        cand = _lognormal(rng, 200, sigma=0.3)
        verdicts.append(verdict(bootstrap_change(base, cand, "median", seed=trial), 5.0))
    assert verdicts.count("no change") >= 38, verdicts


def test_bootstrap_is_reproducible_and_seed_dependent() -> None:
    rng = random.Random(7)
    base, cand = _lognormal(rng, 100), _lognormal(rng, 100)
    assert bootstrap_change(base, cand, seed=3) == bootstrap_change(base, cand, seed=3)
    assert bootstrap_change(base, cand, seed=3) != bootstrap_change(base, cand, seed=4)


def test_percentile_bootstrap_agrees_with_brute_force_resampling() -> None:
    """The O(1) order-statistic draw must give the same interval as resampling and sorting."""
    rng = random.Random(11)
    base, cand = _lognormal(rng, 150, sigma=0.4), _lognormal(rng, 150, scale=1.05, sigma=0.4)
    fast = bootstrap_change(base, cand, "p90", n_boot=4000, seed=0)
    brute = random.Random(99)
    pct = sorted((compute(brute.choices(cand, k=150), "p90") / compute(brute.choices(base, k=150), "p90") - 1) * 100
                 for _ in range(4000))
    assert fast.lo_pct == pytest.approx(percentile(pct, 2.5), abs=1.5)
    assert fast.hi_pct == pytest.approx(percentile(pct, 97.5), abs=1.5)


def test_bootstrap_of_2x1000_samples_is_reproducible() -> None:
    """Same seed, same interval (its speed is a figure: benchmarks/compare_speed.py)."""
    rng = random.Random(5)
    base, cand = _lognormal(rng, 1000), _lognormal(rng, 1000)
    for statistic in ("median", "p90"):
        first, again = bootstrap_change(base, cand, statistic), bootstrap_change(base, cand, statistic)
        assert first == again and first.lo_pct <= first.point_pct <= first.hi_pct


def test_single_samples_give_a_degenerate_interval() -> None:
    change = bootstrap_change([5.0], [6.0])
    assert change.point_pct == change.lo_pct == change.hi_pct == pytest.approx(20.0)


@pytest.mark.parametrize(("base", "cand"), [([], [1.0]), ([1.0], [])])
def test_empty_samples_cannot_be_compared(base: list[float], cand: list[float]) -> None:
    with pytest.raises(ValueError):
        bootstrap_change(base, cand)


def test_zero_base_statistic_is_an_error() -> None:
    with pytest.raises(ValueError, match="zero"):
        bootstrap_change([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])


def test_ratio_change_tracks_token_rate() -> None:
    rng = random.Random(3)
    tokens = [float(rng.randint(50, 70)) for _ in range(200)]
    base_time = [t / 100.0 * rng.lognormvariate(0, 0.05) for t in tokens]   # ~100 tok/s
    cand_time = [t / 80.0 * rng.lognormvariate(0, 0.05) for t in tokens]    # ~80 tok/s: 20 % slower
    change = bootstrap_ratio_change(tokens, base_time, tokens, cand_time)
    assert change.point_pct == pytest.approx(-20.0, abs=2.0)
    assert change.hi_pct < -15
    assert verdict(change, 5.0, higher_is_better=True) == "regressed"


@pytest.mark.parametrize(
    ("change", "higher_is_better", "expected"),
    [
        (Change(10, 6, 14), False, "regressed"),
        (Change(10, 4, 14), False, "no change"),   # the interval reaches inside the threshold
        (Change(-10, -14, -6), False, "improved"),
        (Change(-10, -14, -6), True, "regressed"),
        (Change(10, 6, 14), True, "improved"),
        (Change(0, -3, 3), True, "no change"),
        (Change(5, 5, 5), False, "no change"),     # exactly at the threshold is not beyond it
    ],
)
def test_verdict(change: Change, higher_is_better: bool, expected: str) -> None:
    assert verdict(change, 5.0, higher_is_better) == expected


@pytest.mark.parametrize(("statistic", "expected"), [("median", 5), ("mean", 5), ("ratio", 5), ("p90", 10),
                                                     ("p95", 20), ("p99", 100)])
def test_min_samples_for_a_verdict(statistic: str, expected: int) -> None:
    assert min_samples(statistic) == expected
