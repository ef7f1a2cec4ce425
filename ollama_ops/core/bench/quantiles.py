"""Bounded-memory summaries of a long stream of samples (pure: stdlib only, no numpy).

`QuantileSketch` keeps a metric's samples exactly up to `exact_limit` (so the percentiles of a typical run are the
exact `stats.percentile` ones), then folds them into a `LogHistogram` and from then on keeps only a pending batch
of at most `batch` samples: its memory stops growing however many samples follow. n, mean, min and max stay exact
(the mean is a correctly rounded `math.fsum`, carried from batch to batch). EXACT_LIMIT is 4,096 rather than tens
of thousands: past it the histogram's error (< 0.05 %) is below what a latency measurement resolves anyway, and a
small limit makes a long run's memory flat after a few thousand requests instead of after 50,000.

`LogHistogram` counts values in log-linear buckets (HDR-histogram style): a value's float32 bits with the low 13
mantissa bits dropped, i.e. 1,024 equal buckets an octave, each reported as its midpoint, within 2^-11 ≈ 0.049 %
of every value in it (the float32 rounding adds at most 2^-24). Counts live in pages of 256 buckets (1 KiB)
allocated only where values fall, so the memory is bounded by the range of the values (every bucket from 1 µs to
1,000 s: 30 octaves, 120 KiB), never by their number. Folding a batch is C-level bulk work (float32 conversion,
byte masking, `collections.Counter`) plus one Python step per distinct bucket in it.

A percentile from the histogram uses the same linear interpolation between closest ranks as `stats.percentile`
(numpy's default), between the estimates of the two ranks; each estimate is within 0.049 % of the true order
statistic (rank 0 and n − 1 are the exact min and max, and estimates are clamped to them), so the result is
within 0.049 % of the exact percentile for data of one sign (for two ranks straddling 0: of the larger
neighbour's magnitude).

`EvenSample` keeps a bounded, evenly thinned subset of a series of rows (every k-th, k doubling when full), for
charts that need the shape of a run, not each of its points.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain

from ollama_ops.core.stats import Distribution, describe, percentile_sorted

MANTISSA_BITS = 10  # kept of a float32's 23: 1,024 buckets an octave, each at most 2^-10 wide (relative)
PAGE_BITS = 8  # a page of counts is 256 buckets (a quarter octave), 1 KiB of uint32
EXACT_LIMIT = 4096  # exact samples kept per metric before switching to the histogram
BATCH = 4096  # pending samples folded at once into the histogram

_DROP = 23 - MANTISSA_BITS  # low bits of a float32 dropped: 13 = the low byte and 5 bits of the next
_CLEAR = bytes(b & ~((1 << (_DROP - 8)) - 1) & 0xFF for b in range(256))  # clears those 5 bits in a byte
_LOW, _NEXT = (0, 1) if sys.byteorder == "little" else (3, 2)  # byte offsets of those bits in a float32
_HALF = 1 << (_DROP - 1)  # added to a bucket's lower edge: its midpoint
_PAGE = 1 << PAGE_BITS
_ID_SHIFT = _DROP + PAGE_BITS  # float32 bits → page number (sign, exponent, top mantissa bits)
_SIGN_PAGE = 1 << (31 - _ID_SHIFT)  # pages from this number on hold negative values
_PERCENTS = (50.0, 90.0, 95.0, 99.0)


def relative_error() -> float:
    """The largest relative error of a histogram estimate of a normal float32 value (half a bucket)."""
    return 2.0 ** -(MANTISSA_BITS + 1)


class LogHistogram:
    """Counts of values in log-linear buckets: a value's float32 bits with the low 13 mantissa bits dropped, so
    each octave [2^e, 2^(e+1)) is split in 1,024 equal buckets, each reported as its midpoint (within 2^-11 ≈
    0.049 % of every value in it). Pages of 256 buckets (1 KiB of uint32 counts, widened to uint64 if one
    overflows) are allocated only where values fall: latencies that fill every bucket from 1 µs to 1,000 s (30
    octaves) take 120 KiB, at most 2,048 pages exist. Values below float32's normal range (|x| < 1.2e-38,
    zeros included) count as 0, values beyond it as ±inf (then clamped to the exact min/max by the sketch).

    Counting a batch is C-level bulk work (float32 conversion, byte masking, `Counter`) plus a Python step per
    distinct bucket in the batch."""

    __slots__ = ("_pages", "count")

    def __init__(self) -> None:
        self._pages: dict[int, array[int]] = {}  # float32 bits >> _ID_SHIFT → _PAGE counts
        self.count = 0

    def add_many(self, values: Sequence[float]) -> None:
        """Count every value of a batch (a list is fastest)."""
        n = len(values)
        if not n:
            return
        try:
            f = array("f", struct.pack(f"{n}f", *values))  # twice as fast as array("f", values)
        except OverflowError:  # beyond float32: array() makes it ±inf
            f = array("f", values)
        raw = memoryview(f).cast("B")
        raw[_LOW::4] = bytes(n)
        raw[_NEXT::4] = bytes(raw[_NEXT::4]).translate(_CLEAR)
        pages, get, shift, drop, mask = self._pages, self._pages.get, _ID_SHIFT, _DROP, _PAGE - 1
        for bits, c in Counter(raw.cast("I")).items():
            page = get(bits >> shift)
            if page is None:
                page = pages[bits >> shift] = array("I", bytes(4 * _PAGE))
            off = (bits >> drop) & mask
            try:
                page[off] += c
            except OverflowError:  # a bucket past 2^32: this page counts in uint64 from now on
                page = pages[bits >> shift] = array("Q", page)
                page[off] += c
        self.count += n

    def values_at(self, ranks: Sequence[int]) -> list[float]:
        """Estimates of the values of rank r (0 = smallest) for each r in the ascending `ranks`."""
        out: list[float] = []
        want = iter(ranks)
        r = next(want, None)
        cum = 0
        for number, page in self._pages_in_order():
            if r is None:
                break
            total = sum(page)
            if r >= cum + total:  # not in this page
                cum += total
                continue
            offsets = range(_PAGE - 1, -1, -1) if number >= _SIGN_PAGE else range(_PAGE)
            for off in offsets:
                c = page[off]
                if c and r is not None and r < cum + c:
                    value = _midpoint(number, off)
                    while r is not None and r < cum + c:
                        out.append(value)
                        r = next(want, None)
                cum += c
        if r is not None:
            raise ValueError(f"rank {r} out of range for {self.count} values")
        return out

    def _pages_in_order(self) -> Iterator[tuple[int, array[int]]]:
        """(page number, counts) in ascending order of value (a negative page's offsets run backwards)."""
        numbers = sorted(self._pages)
        negative = [n for n in numbers if n >= _SIGN_PAGE][::-1]
        for number in negative + [n for n in numbers if n < _SIGN_PAGE]:
            yield number, self._pages[number]

    def nbytes(self) -> int:
        """Memory held: the page table and the pages."""
        return sys.getsizeof(self._pages) + sum(sys.getsizeof(p) for p in self._pages.values())


def _midpoint(number: int, off: int) -> float:
    bits = (number << _ID_SHIFT) | (off << _DROP)
    exponent = (bits >> 23) & 0xFF
    if exponent == 0:  # zero or subnormal
        return 0.0
    if exponent != 0xFF:  # not ±inf
        bits |= _HALF
    return float(array("f", bits.to_bytes(4, sys.byteorder))[0])


class QuantileSketch:
    """One metric's samples: exact up to `exact_limit`, then a LogHistogram plus a pending batch."""

    __slots__ = ("_batch", "_buf", "_cap", "_hist", "_max", "_min", "_n", "_sum")

    def __init__(self, exact_limit: int = EXACT_LIMIT, batch: int = BATCH) -> None:
        if exact_limit < 0 or batch < 1:
            raise ValueError("exact_limit must be ≥ 0 and batch ≥ 1")
        self._buf: array[float] = array("d")
        self._cap = exact_limit + 1  # the buffer length that triggers a fold
        self._batch = batch
        self._hist: LogHistogram | None = None
        self._n = 0  # folded samples (the pending ones are in _buf)
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    def add(self, value: float) -> None:
        buf = self._buf
        buf.append(value)
        if len(buf) >= self._cap:
            self._fold()

    def extend(self, values: Iterable[float]) -> None:
        buf = self._buf
        buf.extend(values)
        if len(buf) >= self._cap:
            self._fold()

    def __len__(self) -> int:
        return self._n + len(self._buf)

    @property
    def exact(self) -> bool:
        """Whether every sample is still held (percentiles exact)."""
        return self._hist is None

    def _fold(self) -> None:
        buf = self._buf
        if self._hist is None:
            self._hist = LogHistogram()
            self._cap = self._batch
        if buf:
            values = buf.tolist()  # floats made once, not by each of the passes below
            self._hist.add_many(values)
            self._n += len(values)
            self._sum = math.fsum(chain((self._sum,), values))
            self._min = min(self._min, min(values))
            self._max = max(self._max, max(values))
        self._buf = array("d")

    def quantiles(self, percents: Sequence[float]) -> list[float]:
        """The p-th percentiles (stats.percentile's interpolation); ValueError when empty or p out of range."""
        n = len(self)
        if n == 0:
            raise ValueError("percentile of an empty sample")
        for p in percents:
            if not 0 <= p <= 100:
                raise ValueError(f"percentile must be in [0, 100], got {p}")
        if self._hist is None:
            ordered = sorted(self._buf)
            return [percentile_sorted(ordered, p) for p in percents]
        self._fold()
        positions = [(n - 1) * p / 100.0 for p in percents]
        ranks = sorted({r for h in positions for r in (math.floor(h), min(n - 1, math.floor(h) + 1))})
        assert self._hist is not None
        found = dict(zip(ranks, self._hist.values_at(ranks), strict=True))
        lo_v, hi_v = self._min, self._max
        found[0] = lo_v
        found[n - 1] = hi_v

        def value(rank: int) -> float:
            return min(hi_v, max(lo_v, found[rank]))

        out = []
        for h in positions:
            lo = math.floor(h)
            frac = h - lo
            a = value(lo)
            out.append(a + frac * (value(lo + 1) - a) if frac and lo < n - 1 else a)
        return out

    def quantile(self, p: float) -> float:
        return self.quantiles([p])[0]

    def describe(self) -> Distribution | None:
        """n, mean, min, p50/p90/p95/p99, max (exactly `stats.describe` while exact); None when empty."""
        if self._hist is None:
            return describe(self._buf)
        self._fold()
        p50, p90, p95, p99 = self.quantiles(_PERCENTS)
        return Distribution(n=self._n, mean=self._sum / self._n, min=self._min, p50=p50, p90=p90, p95=p95,
                            p99=p99, max=self._max)

    def nbytes(self) -> int:
        """Memory held by the samples and the histogram (not counting this object's few fields)."""
        return sys.getsizeof(self._buf) + (self._hist.nbytes() if self._hist is not None else 0)


class EvenSample:
    """At most `cap` rows of a series, evenly spread over it: the rows whose index is a multiple of a stride k,
    k doubling (and every other kept row dropped) whenever `cap` rows are held, so between cap/2 and cap rows
    remain. Each column is an array of doubles."""

    __slots__ = ("cap", "columns", "seen", "stride")

    def __init__(self, width: int, cap: int = 5000) -> None:
        if width < 1 or cap < 2:
            raise ValueError("width must be ≥ 1 and cap ≥ 2")
        self.cap = cap - cap % 2
        self.columns: list[array[float]] = [array("d") for _ in range(width)]
        self.seen = 0  # rows offered so far
        self.stride = 1

    def add(self, *row: float) -> None:
        """Offer one row."""
        self.extend(*([v] for v in row))

    def extend(self, *columns: Sequence[float]) -> None:
        """Offer a batch of rows, given column by column (equal lengths)."""
        n = len(columns[0])
        if len(columns) != len(self.columns) or any(len(c) != n for c in columns):
            raise ValueError("one column of equal length per column of the sample")
        pos = 0
        while pos < n:
            first = pos + (-(self.seen + pos)) % self.stride  # the next row whose index the stride divides
            room = self.cap - len(self.columns[0])
            end = min(n, first + room * self.stride)
            for kept, column in zip(self.columns, columns, strict=True):
                kept.extend(column[first:end:self.stride])
            pos = end  # > pos: first ≥ pos and room ≥ 1
            if len(self.columns[0]) >= self.cap:
                self.columns = [kept[::2] for kept in self.columns]
                self.stride *= 2
        self.seen += n

    def __len__(self) -> int:
        return len(self.columns[0])

    def lists(self) -> list[list[float]]:
        """The kept rows, column by column."""
        return [list(column) for column in self.columns]

    def nbytes(self) -> int:
        return sum(sys.getsizeof(column) for column in self.columns)
