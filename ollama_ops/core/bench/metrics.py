"""Benchmark metric math (pure): per-request latencies, SLOs and goodput, and the run summary.

Definitions (vLLM's, see DESIGN.md): TTFT = send → first chunk with text; E2EL = send → last chunk with text;
TPOT = (E2EL − TTFT) / (output tokens − 1) when there is more than one output token; ITL = every gap between
consecutive text chunks, pooled over requests; queue/overhead = E2EL − the server's total_duration. Throughput
is a total over the wall time from the first send to the last response; goodput counts only the successful
requests that meet every SLO given.

`MetricsAccumulator` holds a run's samples in `quantiles.QuantileSketch`es: every sample of a metric while there
are at most `quantiles.EXACT_LIMIT` (exact percentiles), then a log-linear histogram (percentiles within 0.05 %;
n, mean, min and max exact). With the per-request rows going to the store as the run goes, and the chart series
thinned to SERIES_POINTS rows, the memory of a run stays constant however long it runs.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import filterfalse
from typing import Any

from ollama_ops.core.bench.quantiles import EvenSample, QuantileSketch
from ollama_ops.core.stats import Distribution, median
from ollama_ops.core.units import parse_duration

SLO_METRICS = ("ttft", "tpot", "e2el")
SERIES_POINTS = 5000  # most (send offset, TTFT, E2EL) rows kept for the latency charts


@dataclass(frozen=True)
class SLO:
    """Latency objectives in seconds; None = not set."""

    ttft: float | None = None
    tpot: float | None = None
    e2el: float | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.ttft, self.tpot, self.e2el))

    def as_dict(self) -> dict[str, float]:
        return {k: v for k in SLO_METRICS if (v := getattr(self, k)) is not None}


def parse_slo(text: str | None) -> SLO:
    """'ttft=500ms,tpot=50ms,e2el=5s' → SLO. Raises ValueError naming the bad part."""
    if not text or not text.strip():
        return SLO()
    values: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in SLO_METRICS:
            raise ValueError(f"SLO part {part.strip()!r} is not one of ttft=, tpot=, e2el= with a duration "
                             f"(e.g. ttft=500ms,tpot=50ms,e2el=5s)")
        try:
            seconds = parse_duration(raw.strip())
        except ValueError as exc:
            raise ValueError(f"SLO {key}: {exc}") from None
        if not seconds > 0:
            raise ValueError(f"SLO {key} must be positive, got {raw.strip()!r}")
        values[key] = seconds
    return SLO(**values)


def request_latencies(send: float, text_times: Sequence[float]) -> tuple[float | None, float | None, list[float]]:
    """(TTFT, E2EL, ITL gaps) from the send time and the arrival times of the chunks that carried text."""
    if not text_times:
        return None, None, []
    gaps = [b - a for a, b in zip(text_times, text_times[1:], strict=False)]
    return text_times[0] - send, text_times[-1] - send, gaps


def tpot(ttft: float | None, e2el: float | None, output_tokens: int) -> float | None:
    """Time per output token after the first; None when undefined (one token or less, or no latencies)."""
    if ttft is None or e2el is None or output_tokens <= 1:
        return None
    return (e2el - ttft) / (output_tokens - 1)


def queue_overhead(e2el: float | None, total_s: float | None) -> float | None:
    """E2EL − server total_duration: time spent outside the server's own clock (HTTP, queueing before it)."""
    if e2el is None or not total_s:
        return None
    return e2el - total_s


def meets_slo(slo: SLO, ttft: float | None, tpot_s: float | None, e2el: float | None) -> bool:
    """Whether one successful request meets every objective set. A TPOT objective does not apply to a request
    with a single output token (its TPOT is undefined); a missing TTFT/E2EL fails its objective."""
    if slo.ttft is not None and (ttft is None or ttft > slo.ttft):
        return False
    if slo.tpot is not None and tpot_s is not None and tpot_s > slo.tpot:
        return False
    return not (slo.e2el is not None and (e2el is None or e2el > slo.e2el))


# The parts of a request's E2EL, in order. `wait` is time inside the server's total that none of its own timers
# covers: with more requests than OLLAMA_NUM_PARALLEL slots it is the wait for a slot in the runner.
BREAKDOWN_LABELS = {
    "load": "load (incl. scheduler queue)",
    "prompt_eval": "prompt eval",
    "eval": "eval",
    "wait": "runner wait (total − load − prompt − eval)",
    "queue": "queue + overhead (E2EL − total)",
}


def request_parts(load: float, prompt_eval: float, eval_: float, total: float, queue: float) -> dict[str, float]:
    """One request's time split into the BREAKDOWN_LABELS parts (seconds)."""
    return dict(zip(BREAKDOWN_LABELS, _part_values(load, prompt_eval, eval_, total, queue), strict=True))


def _part_values(load: float, prompt_eval: float, eval_: float, total: float,
                 queue: float) -> tuple[float, float, float, float, float]:
    return load, prompt_eval, eval_, max(0.0, total - load - prompt_eval - eval_), queue


@dataclass
class ServerBreakdown:
    """Where a request's time went, by the server's account: medians over requests of each part's share of the
    request's E2EL, and the medians in seconds. `queue` is E2EL − total_duration (client side, HTTP, queueing
    before the server's timer); Ollama counts time waiting in its scheduler as `load`, and time waiting for a
    runner slot appears only in its total (`wait`)."""

    load_share: float
    prompt_eval_share: float
    eval_share: float
    wait_share: float
    queue_share: float
    load_s: float
    prompt_eval_s: float
    eval_s: float
    wait_s: float
    queue_s: float

    def rows(self) -> list[tuple[str, float, float]]:
        """(label, median seconds, median share of E2EL) per part, in order."""
        return [(label, getattr(self, f"{key}_s"), getattr(self, f"{key}_share"))
                for key, label in BREAKDOWN_LABELS.items()]


def server_breakdown(parts: Mapping[str, Sequence[float]], e2el: Sequence[float]) -> ServerBreakdown | None:
    """Medians of each part and of its share of the same request's E2EL; None without samples."""
    if not len(e2el):
        return None
    fields_: dict[str, float] = {}
    for key in BREAKDOWN_LABELS:
        values = parts[key]
        mid, share = median(values), median([v / e for v, e in zip(values, e2el, strict=True) if e])
        fields_[f"{key}_s"] = math.nan if mid is None else mid
        fields_[f"{key}_share"] = math.nan if share is None else share
    return ServerBreakdown(**fields_)


@dataclass
class BenchSummary:
    """The figures of one run (warm-up excluded). Throughputs are per second of wall time."""

    requests_ok: int
    requests_failed: int
    errors: dict[str, int]
    duration_s: float
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    output_tokens: int
    prompt_tokens: int
    output_tokens_source: str  # "server" | "chunks" | "mixed" | "none"
    ttft: Distribution | None
    tpot: Distribution | None
    itl: Distribution | None
    e2el: Distribution | None
    breakdown: ServerBreakdown | None
    slo: dict[str, float] = field(default_factory=dict)
    goodput: float | None = None
    slo_attainment: float | None = None
    # The wait a sollama gateway reported for each request (`X-Queue-Wait-Ms`, failures included); None when the
    # server reported none (Ollama itself, any other server).
    gateway_queue: Distribution | None = None


# One row of MetricsAccumulator's pending buffer: send offset, TTFT, E2EL, TPOT, the parts, their shares (NaN when
# absent), transposed into the sketches every 256 requests.
_METRICS = ("ttft", "e2el", "tpot")
_ROW = 1 + len(_METRICS) + 2 * len(BREAKDOWN_LABELS)
_FLUSH_LEN = 256 * _ROW
_NAN = math.nan
_NO_PARTS = (_NAN,) * (2 * len(BREAKDOWN_LABELS))
_NO_ROW = (_NAN,) * _ROW


class MetricsAccumulator:
    """Collects the per-request samples of one run, in constant memory, and builds its BenchSummary.

    The hot path (`add`, once per request) appends one row of floats to a small buffer; every 256
    requests the buffer is transposed into one `QuantileSketch` per metric by C-level slicing."""

    def __init__(self, slo: SLO | None = None) -> None:
        self.slo = slo or SLO()
        self.has_slo = bool(self.slo)
        self.ok = 0
        self.failed = 0
        self.errors: dict[str, int] = {}
        self.output_tokens = 0
        self.prompt_tokens = 0
        self.sources: set[str] = set()
        self.good = 0
        self.ttft = QuantileSketch()
        self.e2el = QuantileSketch()
        self.tpot = QuantileSketch()
        self.itl = QuantileSketch()
        self.gateway_queue = QuantileSketch()
        # Each part of a request's time in seconds, and its share of the same request's E2EL.
        self.parts = {k: QuantileSketch() for k in BREAKDOWN_LABELS}
        self.shares = {k: QuantileSketch() for k in BREAKDOWN_LABELS}
        # (send offset, TTFT, E2EL) of successful requests for latency-over-time charts, evenly thinned.
        self.series = EvenSample(3, SERIES_POINTS)
        self._rows = array("d")
        self._sinks = [self.ttft, self.e2el, self.tpot, *self.parts.values(), *self.shares.values()]

    def add(self, record: Any, send_offset: float = 0.0) -> None:
        """Add one request (a `records.RequestRecord` or anything with its fields)."""
        wait = record.gateway_queue_s
        if wait is not None:
            self.gateway_queue.add(wait)
        if not record.ok:
            self.failed += 1
            kind = record.error_kind or "error"
            self.errors[kind] = self.errors.get(kind, 0) + 1
            return
        self.ok += 1
        self.output_tokens += record.output_tokens
        self.prompt_tokens += record.prompt_tokens
        self.sources.add(record.output_tokens_source)
        t_first, t_end = record.ttft, record.e2el
        t_pot = tpot(t_first, t_end, record.output_tokens)
        if record.itl:
            self.itl.extend(record.itl)
        if self.has_slo and meets_slo(self.slo, t_first, t_pot, t_end):
            self.good += 1
        rows = self._rows
        total = record.total_s
        if t_first is None or t_end is None:
            rows.extend(_NO_ROW)
        elif total and t_end:
            load, prompt, eval_, wait, queue = _part_values(record.load_s or 0.0, record.prompt_eval_s or 0.0,
                                                            record.eval_s or 0.0, total, record.queue_s or 0.0)
            rows.extend((send_offset, t_first, t_end, _NAN if t_pot is None else t_pot,
                         load, prompt, eval_, wait, queue,
                         load / t_end, prompt / t_end, eval_ / t_end, wait / t_end, queue / t_end))
        else:
            rows.extend((send_offset, t_first, t_end, _NAN if t_pot is None else t_pot))
            rows.extend(_NO_PARTS)
        if len(rows) >= _FLUSH_LEN:
            self._flush()

    def _flush(self) -> None:
        """Transpose the pending rows into the sketches and the chart series."""
        rows = self._rows
        if not rows:
            return
        self._rows = array("d")
        send, first, end = (rows[i::_ROW] for i in range(3))
        if _has_nan(end):
            keep = [i for i, v in enumerate(end) if not math.isnan(v)]
            send, first, end = (array("d", [c[i] for i in keep]) for c in (send, first, end))
        self.series.extend(send, first, end)
        for i, sketch in enumerate(self._sinks, start=1):
            column = rows[i::_ROW]
            sketch.extend(filterfalse(math.isnan, column) if _has_nan(column) else column)

    @property
    def count(self) -> int:
        return self.ok + self.failed

    def breakdown(self) -> ServerBreakdown | None:
        """Medians of each part and of its share of the request's E2EL (as `server_breakdown`)."""
        self._flush()
        if not len(self.parts["load"]):
            return None
        fields_: dict[str, float] = {}
        for key in BREAKDOWN_LABELS:
            fields_[f"{key}_s"] = self.parts[key].quantile(50)
            fields_[f"{key}_share"] = self.shares[key].quantile(50)
        return ServerBreakdown(**fields_)

    def chart_series(self) -> tuple[list[float], list[float], list[float]]:
        """(send offsets, TTFTs, E2ELs) of at most SERIES_POINTS successful requests spread evenly over the run."""
        self._flush()
        send, first, end = self.series.lists()
        return send, first, end

    def nbytes(self) -> int:
        """Memory held by the samples: bounded (see `quantiles`), whatever the number of requests."""
        return (sum(s.nbytes() for s in (*self._sinks, self.itl, self.gateway_queue)) + self.series.nbytes()
                + sys.getsizeof(self._rows))

    def summary(self, duration_s: float) -> BenchSummary:
        """The run summary over `duration_s` seconds of wall time (first send → last response)."""
        def per_second(total: float) -> float:
            return total / duration_s if duration_s > 0 else 0.0

        self._flush()
        sources = set(self.sources)
        source = "none" if not sources else sources.pop() if len(sources) == 1 else "mixed"
        return BenchSummary(
            requests_ok=self.ok, requests_failed=self.failed, errors=dict(sorted(self.errors.items())),
            duration_s=duration_s, request_throughput=per_second(self.ok),
            output_throughput=per_second(self.output_tokens),
            total_token_throughput=per_second(self.output_tokens + self.prompt_tokens),
            output_tokens=self.output_tokens, prompt_tokens=self.prompt_tokens, output_tokens_source=source,
            ttft=self.ttft.describe(), tpot=self.tpot.describe(), itl=self.itl.describe(),
            e2el=self.e2el.describe(), breakdown=self.breakdown(), slo=self.slo.as_dict(),
            goodput=per_second(self.good) if self.slo else None,
            slo_attainment=(self.good / self.count if self.count else 0.0) if self.slo else None,
            gateway_queue=self.gateway_queue.describe())


def _has_nan(column: array[float]) -> bool:
    return math.isnan(sum(column))  # NaN propagates (as would inf − inf: filtered the same, harmlessly)
