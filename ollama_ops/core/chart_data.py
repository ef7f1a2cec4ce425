"""Chart data shaping (pure): histograms, even thinning, bucketed means and stacking.

What the HTML report draws must stay small however long the run was: a distribution becomes a fixed number of
bins, a per-request series keeps at most a cap of evenly spread rows (the same `quantiles.EvenSample` the bench
uses for its terminal chart series), and a per-request breakdown becomes means over send-time buckets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ollama_ops.core.bench.quantiles import EvenSample

MAX_BINS = 40


@dataclass
class Histogram:
    """Equal-width bins: `centers[i]` is the middle of bin i, `counts[i]` how many values fell in it."""

    centers: list[float]
    counts: list[int]
    width: float


def bin_count(n: int) -> int:
    """Bins for n values: about √n, at least 5, at most MAX_BINS."""
    return max(5, min(MAX_BINS, math.ceil(math.sqrt(max(n, 1)))))


def histogram(values: Sequence[float], bins: int | None = None) -> Histogram:
    """Equal-width bins from the smallest to the largest value (the largest falls in the last bin). Empty for no
    values; one bin when every value is the same."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Histogram([], [], 0.0)
    lo, hi = min(finite), max(finite)
    if hi == lo:
        return Histogram([lo], [len(finite)], 0.0)
    k = bins or bin_count(len(finite))
    width = (hi - lo) / k
    counts = [0] * k
    for v in finite:
        counts[min(k - 1, int((v - lo) / width))] += 1
    return Histogram([lo + (i + 0.5) * width for i in range(k)], counts, width)


def thin(columns: Sequence[Sequence[float]], cap: int) -> list[list[float]]:
    """At most `cap` rows of equal-length columns, evenly spread (every k-th row; all rows when there are at most
    `cap`)."""
    if not columns or not len(columns[0]):
        return [[] for _ in columns]
    if len(columns[0]) <= cap:
        return [list(c) for c in columns]
    sample = EvenSample(len(columns), cap)
    sample.extend(*columns)
    return [list(c) for c in sample.columns]


def bucket_means(xs: Sequence[float], columns: Sequence[Sequence[float]],
                 buckets: int) -> tuple[list[float], list[list[float]], list[int]]:
    """Rows grouped into `buckets` equal-width ranges of x: (bucket centres, per column the mean in each bucket,
    rows per bucket). Buckets without rows are left out."""
    if not xs:
        return [], [[] for _ in columns], []
    lo, hi = min(xs), max(xs)
    k = 1 if hi == lo else max(1, buckets)
    width = (hi - lo) / k if k > 1 else 0.0
    sums = [[0.0] * k for _ in columns]
    counts = [0] * k
    for row, x in enumerate(xs):
        i = 0 if width == 0 else min(k - 1, int((x - lo) / width))
        counts[i] += 1
        for c, column in enumerate(columns):
            sums[c][i] += column[row]
    keep = [i for i in range(k) if counts[i]]
    centers = [lo + (i + 0.5) * width if width else lo for i in keep]
    return centers, [[sums[c][i] / counts[i] for i in keep] for c in range(len(columns))], [counts[i] for i in keep]


def stacked(columns: Sequence[Sequence[float]]) -> list[list[float]]:
    """Running sums of the columns (column i = the sum of columns 0..i), the tops of a stacked bar chart."""
    out: list[list[float]] = []
    for column in columns:
        out.append([a + b for a, b in zip(out[-1], column, strict=True)] if out else list(column))
    return out
