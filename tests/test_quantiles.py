"""The bounded-memory quantile sketch and the evenly thinned chart sample."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ollama_ops.core.bench.quantiles import EvenSample, LogHistogram, QuantileSketch, relative_error
from ollama_ops.core.stats import describe, percentile

PERCENTS = (0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)


def _close(estimate: float, exact: float, ordered: list[float], p: float) -> bool:
    """Within 0.1 % of the exact percentile; for two ranks of opposite signs, of the larger neighbour."""
    h = (len(ordered) - 1) * p / 100
    scale = max(abs(ordered[math.floor(h)]), abs(ordered[min(len(ordered) - 1, math.floor(h) + 1)]))
    return abs(estimate - exact) <= 1e-3 * scale + 1e-30


def test_relative_error_is_under_a_tenth_of_a_percent() -> None:
    assert relative_error() < 0.0005


@pytest.mark.parametrize("values", [
    [0.5],
    [0.0, 0.0, 0.0],
    [1e-6, 1e-3, 1.0, 1e3],
    [-2.0, -1.0, 0.0, 1.0, 2.0],
    [0.010 + i * 1e-6 for i in range(5000)],
    [-0.3, -0.2, -0.1],
])
@pytest.mark.parametrize("exact_limit", [0, 3, 100_000])
def test_sketch_matches_stats_percentile(values: list[float], exact_limit: int) -> None:
    sketch = QuantileSketch(exact_limit=exact_limit, batch=64)
    sketch.extend(values)
    ordered = sorted(values)
    for p, got in zip(PERCENTS, sketch.quantiles(PERCENTS), strict=True):
        assert _close(got, percentile(values, p), ordered, p), (p, got, percentile(values, p))


def test_exact_until_the_limit_then_a_histogram() -> None:
    values = [random.Random(1).expovariate(20) for _ in range(1000)]
    sketch = QuantileSketch(exact_limit=1000, batch=100)
    sketch.extend(values)
    assert sketch.exact and sketch.describe() == describe(values)  # identical figures while exact
    sketch.add(0.05)
    assert not sketch.exact
    d, e = sketch.describe(), describe([*values, 0.05])
    assert d is not None and e is not None
    assert (d.n, d.min, d.max) == (e.n, e.min, e.max)
    assert d.mean == pytest.approx(e.mean, rel=1e-12)
    for name in ("p50", "p90", "p95", "p99"):
        assert getattr(d, name) == pytest.approx(getattr(e, name), rel=1e-3)


def test_empty_and_bad_percentiles() -> None:
    sketch = QuantileSketch()
    assert sketch.describe() is None and len(sketch) == 0
    with pytest.raises(ValueError, match="empty"):
        sketch.quantile(50)
    sketch.add(1.0)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        sketch.quantile(101)
    with pytest.raises(ValueError):
        QuantileSketch(exact_limit=-1)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(1e-7, 1e4, allow_nan=False), min_size=1, max_size=400),
       st.sampled_from(PERCENTS))
def test_positive_data_within_a_tenth_of_a_percent(values: list[float], p: float) -> None:
    sketch = QuantileSketch(exact_limit=0, batch=37)  # histogram from the first sample, several batches
    sketch.extend(values)
    exact = percentile(values, p)
    assert abs(sketch.quantile(p) - exact) <= 1e-3 * exact


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=300), st.sampled_from(PERCENTS))
def test_mixed_signs_within_a_tenth_of_a_percent_of_the_neighbours(values: list[float], p: float) -> None:
    sketch = QuantileSketch(exact_limit=0, batch=16)
    for v in values:
        sketch.add(v)
    assert _close(sketch.quantile(p), percentile(values, p), sorted(values), p)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1e-6, 100, allow_nan=False), min_size=1, max_size=300))
def test_n_mean_min_max_stay_exact(values: list[float]) -> None:
    sketch = QuantileSketch(exact_limit=0, batch=7)
    sketch.extend(values)
    d = sketch.describe()
    assert d is not None
    assert (d.n, d.min, d.max) == (len(values), min(values), max(values))
    assert d.mean == pytest.approx(math.fsum(values) / len(values), rel=1e-12)


def test_memory_stops_growing_with_the_number_of_samples() -> None:
    rng = random.Random(7)
    sketch = QuantileSketch()
    sizes = []
    for _ in range(6):
        for _ in range(50):  # latencies spread over 5 decades (1e-4 s to 10 s), 1,000 at a time like a run
            sketch.extend([10 ** rng.uniform(-4, 1) for _ in range(1000)])
        sizes.append(sketch.nbytes())
    assert len(sketch) == 300_000 and not sketch.exact
    assert max(sizes[1:]) <= 1.05 * sizes[0]  # flat after the first 50k samples
    assert max(sizes) < 600_000  # 17 octave pages of 8 KiB + the pending batch + the recent counts


def test_histogram_orders_negative_zero_and_positive_values() -> None:
    h = LogHistogram()
    h.add_many([3.0, -1.0, 0.0, -4.0, 2.0, 0.0, 1e-300])
    got = h.values_at([0, 1, 2, 3, 4, 5, 6])
    assert got[0] == pytest.approx(-4.0, rel=1e-3) and got[1] == pytest.approx(-1.0, rel=1e-3)
    assert got[2:5] == [0.0, 0.0, 0.0]  # 1e-300 is below float32's range: counted as 0
    assert got[5] == pytest.approx(2.0, rel=1e-3) and got[6] == pytest.approx(3.0, rel=1e-3)
    with pytest.raises(ValueError, match="out of range"):
        h.values_at([7])


def test_histogram_beyond_float32_counts_as_infinite() -> None:
    sketch = QuantileSketch(exact_limit=0)
    sketch.extend([1.0, 2.0, 1e300])
    assert sketch.quantile(100) == 1e300  # the exact max
    assert sketch.quantile(50) == pytest.approx(2.0, rel=1e-3)


@pytest.mark.parametrize("rows", [0, 1, 9, 10, 11, 37, 1000, 12_345])
@pytest.mark.parametrize("chunk", [1, 7, 256])
def test_even_sample_is_bounded_and_evenly_spaced(rows: int, chunk: int) -> None:
    sample = EvenSample(2, cap=10)
    for start in range(0, rows, chunk):
        idx = [float(i) for i in range(start, min(rows, start + chunk))]
        sample.extend(idx, [-i for i in idx])
    kept, mirrored = sample.lists()
    assert len(kept) <= 10 and (rows < 5 or len(kept) >= 5)
    assert kept == [float(i) for i in range(0, rows, sample.stride)]  # every stride-th row, from the first
    assert mirrored == [-v for v in kept]


def test_even_sample_keeps_everything_under_its_cap() -> None:
    sample = EvenSample(1, cap=5000)
    for i in range(4999):
        sample.add(float(i))
    assert len(sample) == 4999 and sample.stride == 1
