"""Summary statistics and the noise-aware comparison of two runs (pure: stdlib only).

Percentiles use linear interpolation between closest ranks (numpy's default, "type 7"). A comparison is a
percentile bootstrap of the relative change of one statistic, resampling the base and the candidate samples
independently.

Rate metrics (output tok/s): a run's throughput (total tokens / wall time) is one number, it has no per-request
samples to resample. The comparison therefore bootstraps, over requests, the ratio of sums
`sum(output tokens) / sum(E2EL)` (`bootstrap_ratio_change`): the token rate of one stream, weighted by request
length. With the same load settings (what `report --compare` pairs by default) it moves in proportion to a
closed-loop run's output tok/s, and unlike the per-request decode rate (1/TPOT, already compared) it includes the
time to first token that users also wait for.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["improved", "regressed", "no change"]

_PCT_RE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")


@dataclass(frozen=True)
class Distribution:
    """Summary of one metric's samples."""

    n: int
    mean: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True)
class Change:
    """Relative change candidate vs base of one statistic, in percent, with its bootstrap confidence interval."""

    point_pct: float
    lo_pct: float
    hi_pct: float


def percentile_sorted(ordered: Sequence[float], p: float) -> float:
    """`percentile` of values already sorted ascending (no copy, O(1))."""
    n = len(ordered)
    if n == 0:
        raise ValueError("percentile of an empty sample")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {p}")
    h = (n - 1) * p / 100.0
    lo = math.floor(h)
    if lo >= n - 1:
        return float(ordered[n - 1])
    frac = h - lo
    a = float(ordered[lo])
    return a + frac * (float(ordered[lo + 1]) - a) if frac else a


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (p in [0, 100]), linear interpolation between closest ranks like numpy's default.

    Raises ValueError for an empty sample or p out of range.
    """
    return percentile_sorted(sorted(values), p)


def median(values: Sequence[float]) -> float | None:
    """The median (the 50th `percentile`), or None for no values."""
    return percentile(values, 50) if values else None


def describe(values: Sequence[float]) -> Distribution | None:
    """n, mean, min, p50/p90/p95/p99, max of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(float(v) for v in values)
    return Distribution(
        n=len(ordered),
        mean=math.fsum(ordered) / len(ordered),
        min=ordered[0],
        p50=percentile_sorted(ordered, 50),
        p90=percentile_sorted(ordered, 90),
        p95=percentile_sorted(ordered, 95),
        p99=percentile_sorted(ordered, 99),
        max=ordered[-1],
    )


def statistic_percent(statistic: str) -> float | None:
    """'median' → 50, 'p90' → 90, 'mean' → None. Raises ValueError for anything else."""
    if statistic == "median":
        return 50.0
    if statistic == "mean":
        return None
    match = _PCT_RE.match(statistic)
    if not match:
        raise ValueError(f"unknown statistic {statistic!r}; use median, mean or pNN (e.g. p90)")
    return float(match.group(1))


def compute(values: Sequence[float], statistic: str) -> float:
    """The named statistic ('median', 'mean', 'pNN') of a non-empty sample."""
    p = statistic_percent(statistic)
    if p is None:
        if not values:
            raise ValueError("mean of an empty sample")
        return math.fsum(values) / len(values)
    return percentile(values, p)


def min_samples(statistic: str) -> int:
    """The fewest samples per side for which a verdict on `statistic` means something: 5 for a median, mean or
    ratio; for a pNN, enough that the percentile is not simply the maximum (10 for p90, 20 for p95, 100 for p99).
    """
    p = 50.0 if statistic == "ratio" else statistic_percent(statistic)
    if p is None or p <= 50:
        return 5
    return max(5, math.ceil(100.0 / (100.0 - p))) if p < 100 else 1_000_000


def _boot_percentiles(ordered: Sequence[float], p: float, n_boot: int, rng: random.Random) -> list[float]:
    """`n_boot` bootstrap replicates of the p-th percentile of `ordered`, in O(1) each.

    Resampling n values with replacement from sorted data and sorting them gives the same order statistics as
    drawing n uniforms U and taking index floor(U·n): the k-th smallest index is floor(U_(k)·n), and the k-th
    order statistic of n uniforms is Beta(k, n-k+1). The next one, given U_(k) = u, is the minimum of the n-k
    uniforms above u: u + (1-u)(1 - V^(1/(n-k))). So each replicate of the interpolated percentile is drawn
    exactly, in distribution, without building the resample (2000 replicates of n=1000 take milliseconds).
    """
    n = len(ordered)
    if n == 1:
        return [float(ordered[0])] * n_boot
    h = (n - 1) * p / 100.0
    lo = min(math.floor(h), n - 1)
    frac = h - lo
    k = lo + 1  # 1-based rank of the lower order statistic
    last = n - 1
    out = []
    for _ in range(n_boot):
        u = rng.betavariate(k, n - k + 1)
        a = float(ordered[min(int(u * n), last)])
        if frac and k < n:
            u2 = u + (1.0 - u) * (1.0 - rng.random() ** (1.0 / (n - k)))
            b = float(ordered[min(int(u2 * n), last)])
            a += frac * (b - a)
        out.append(a)
    return out


def _boot_means(values: Sequence[float], n_boot: int, rng: random.Random) -> list[float]:
    n = len(values)
    pool = [float(v) for v in values]
    return [sum(rng.choices(pool, k=n)) / n for _ in range(n_boot)]


def _replicates(values: Sequence[float], statistic: str, n_boot: int, rng: random.Random) -> list[float]:
    p = statistic_percent(statistic)
    if p is None:
        return _boot_means(values, n_boot, rng)
    return _boot_percentiles(sorted(values), p, n_boot, rng)


def _change(point_base: float, point_cand: float, boot_base: list[float], boot_cand: list[float],
            confidence: float) -> Change:
    if point_base == 0:
        raise ValueError("the base statistic is zero; a relative change is undefined")
    pct = [(c / b - 1.0) * 100.0 for b, c in zip(boot_base, boot_cand, strict=True) if b != 0]
    if not pct:
        raise ValueError("every bootstrap replicate of the base statistic is zero")
    pct.sort()
    tail = (1.0 - confidence) / 2.0 * 100.0
    return Change(point_pct=(point_cand / point_base - 1.0) * 100.0,
                  lo_pct=percentile_sorted(pct, tail), hi_pct=percentile_sorted(pct, 100.0 - tail))


def _check(n_boot: int, confidence: float, *samples: Sequence[float]) -> None:
    if any(len(s) == 0 for s in samples):
        raise ValueError("cannot compare an empty sample")
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")


def bootstrap_change(base: Sequence[float], cand: Sequence[float], statistic: str = "median", *,
                     n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> Change:
    """Relative change (percent) of `statistic` from `base` to `cand`, with a percentile-bootstrap CI.

    `statistic` is 'median', 'mean' or 'pNN' ('p90', 'p99.9'). Both samples are resampled independently
    `n_boot` times with a generator seeded by `seed`, so the result is reproducible. Raises ValueError for empty
    samples or a base statistic of zero.
    """
    _check(n_boot, confidence, base, cand)
    rng = random.Random(seed)
    boot_base = _replicates(base, statistic, n_boot, rng)
    boot_cand = _replicates(cand, statistic, n_boot, rng)
    return _change(compute(base, statistic), compute(cand, statistic), boot_base, boot_cand, confidence)


def _boot_ratios(num: Sequence[float], den: Sequence[float], n_boot: int, rng: random.Random) -> list[float]:
    # Pairs resampled together; a complex number carries (num, den) so one C-level sum adds both.
    pairs = [complex(a, b) for a, b in zip(num, den, strict=True)]
    n = len(pairs)
    out = []
    for _ in range(n_boot):
        s = sum(rng.choices(pairs, k=n))
        out.append(s.real / s.imag if s.imag else 0.0)
    return out


def ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """sum(num) / sum(den); raises ValueError when the denominator sums to zero."""
    total = math.fsum(den)
    if total == 0:
        raise ValueError("ratio with a zero denominator")
    return math.fsum(num) / total


def bootstrap_ratio_change(base_num: Sequence[float], base_den: Sequence[float], cand_num: Sequence[float],
                           cand_den: Sequence[float], *, n_boot: int = 2000, seed: int = 0,
                           confidence: float = 0.95) -> Change:
    """Relative change (percent) of sum(num)/sum(den), e.g. output tokens over E2EL, resampling requests.

    Each request's (num, den) pair is resampled as one unit; base and candidate independently.
    """
    _check(n_boot, confidence, base_num, cand_num)
    if len(base_num) != len(base_den) or len(cand_num) != len(cand_den):
        raise ValueError("numerator and denominator samples differ in length")
    rng = random.Random(seed)
    boot_base = _boot_ratios(base_num, base_den, n_boot, rng)
    boot_cand = _boot_ratios(cand_num, cand_den, n_boot, rng)
    return _change(ratio(base_num, base_den), ratio(cand_num, cand_den), boot_base, boot_cand, confidence)


def verdict(change: Change, threshold_pct: float, higher_is_better: bool = False) -> Verdict:
    """'regressed' when the whole CI lies beyond `threshold_pct` in the bad direction, 'improved' when it lies
    beyond it in the good direction, else 'no change'. Latency: higher is worse; throughput: higher is better.
    """
    if higher_is_better:
        if change.hi_pct < -threshold_pct:
            return "regressed"
        if change.lo_pct > threshold_pct:
            return "improved"
    else:
        if change.lo_pct > threshold_pct:
            return "regressed"
        if change.hi_pct < -threshold_pct:
            return "improved"
    return "no change"
