"""Bench metric math: per-request latencies, SLO parsing and goodput, the run summary."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.core.bench.metrics import (
    SLO,
    MetricsAccumulator,
    meets_slo,
    parse_slo,
    queue_overhead,
    request_latencies,
    tpot,
)
from ollama_ops.core.bench.records import RequestRecord


@pytest.mark.parametrize(("text", "expected"), [
    ("ttft=500ms,tpot=50ms,e2el=5s", SLO(ttft=0.5, tpot=0.05, e2el=5.0)),
    ("ttft=0.2", SLO(ttft=0.2)),
    (" E2EL = 1m ", SLO(e2el=60.0)),
    ("tpot=20ms,", SLO(tpot=0.02)),
    ("", SLO()),
    (None, SLO()),
])
def test_parse_slo(text: str | None, expected: SLO) -> None:
    assert parse_slo(text) == expected


@pytest.mark.parametrize(("text", "needle"), [
    ("latency=5s", "not one of"),
    ("ttft", "not one of"),
    ("ttft=fast", "SLO ttft"),
    ("ttft=0s", "positive"),
])
def test_parse_slo_rejects(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_slo(text)


def test_request_latencies_from_chunk_times() -> None:
    ttft, e2el, itl = request_latencies(10.0, [10.08, 10.09, 10.11, 10.12])
    assert ttft == pytest.approx(0.08)
    assert e2el == pytest.approx(0.12)
    assert itl == pytest.approx([0.01, 0.02, 0.01])
    assert request_latencies(1.0, []) == (None, None, [])


@pytest.mark.parametrize(("ttft", "e2el", "out", "expected"), [
    (0.1, 0.5, 5, 0.1),
    (0.1, 0.1, 1, None),
    (0.1, 0.5, 0, None),
    (None, 0.5, 5, None),
    (0.2, 1.2, 11, 0.1),
])
def test_tpot(ttft: float | None, e2el: float, out: int, expected: float | None) -> None:
    result = tpot(ttft, e2el, out)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_queue_overhead() -> None:
    assert queue_overhead(0.5, 0.48) == pytest.approx(0.02)
    assert queue_overhead(0.5, None) is None
    assert queue_overhead(None, 0.4) is None


@pytest.mark.parametrize(("slo", "values", "ok"), [
    (SLO(ttft=0.5), (0.4, 0.01, 1.0), True),
    (SLO(ttft=0.5), (0.6, 0.01, 1.0), False),
    (SLO(tpot=0.05), (0.1, 0.06, 1.0), False),
    (SLO(tpot=0.05), (0.1, None, 1.0), True),  # one output token: TPOT undefined, objective does not apply
    (SLO(e2el=2.0), (0.1, 0.01, 2.5), False),
    (SLO(ttft=0.5, e2el=2.0), (0.1, 0.01, 1.9), True),
    (SLO(ttft=0.5), (None, None, None), False),
])
def test_meets_slo(slo: SLO, values: tuple[float | None, float | None, float | None], ok: bool) -> None:
    assert meets_slo(slo, *values) is ok


@given(st.floats(0, 100), st.lists(st.floats(0, 10), min_size=1, max_size=50))
def test_latencies_are_consistent(send: float, gaps: list[float]) -> None:
    times = []
    t = send
    for g in gaps:
        t += g
        times.append(t)
    ttft, e2el, itl = request_latencies(send, times)
    assert ttft is not None and e2el is not None
    assert 0 <= ttft <= e2el + 1e-9
    assert math.fsum(itl) == pytest.approx(e2el - ttft, abs=1e-6)
    assert len(itl) == len(times) - 1


def _ok(idx: int, ttft: float, e2el: float, out: int, total: float | None = None) -> RequestRecord:
    return RequestRecord(idx=idx, send_time=100.0 + idx, ok=True, ttft=ttft, e2el=e2el,
                         itl=[(e2el - ttft) / (out - 1)] * (out - 1) if out > 1 else [], output_tokens=out,
                         prompt_tokens=10, load_s=0.0, prompt_eval_s=ttft / 2, eval_s=e2el - ttft,
                         total_s=total, queue_s=queue_overhead(e2el, total))


def test_summary_figures() -> None:
    acc = MetricsAccumulator(SLO(ttft=0.25))
    acc.add(_ok(0, 0.1, 1.1, 11, total=1.0))
    acc.add(_ok(1, 0.2, 2.2, 21, total=2.0))
    acc.add(_ok(2, 0.3, 3.3, 31, total=3.0))
    acc.add(RequestRecord(idx=3, send_time=103.0, ok=False, error_kind="http_503", error="busy"))
    acc.add(RequestRecord(idx=4, send_time=104.0, ok=False, error_kind="timeout", error="stall"))
    s = acc.summary(duration_s=4.0)
    assert (s.requests_ok, s.requests_failed) == (3, 2)
    assert s.errors == {"http_503": 1, "timeout": 1}
    assert s.output_tokens == 63
    assert s.request_throughput == pytest.approx(0.75)
    assert s.output_throughput == pytest.approx(63 / 4)
    assert s.total_token_throughput == pytest.approx((63 + 30) / 4)
    assert s.ttft is not None and s.ttft.p50 == pytest.approx(0.2) and s.ttft.n == 3
    assert s.tpot is not None and s.tpot.p50 == pytest.approx(0.1)  # every request decodes at 10 tok/s
    assert s.itl is not None and s.itl.n == 10 + 20 + 30
    assert s.e2el is not None and s.e2el.max == pytest.approx(3.3)
    assert s.goodput == pytest.approx(2 / 4)  # TTFT 0.1 and 0.2 meet 250 ms
    assert s.slo_attainment == pytest.approx(2 / 5)  # failed requests count against attainment
    assert s.breakdown is not None
    assert s.breakdown.queue_s == pytest.approx(0.2)
    assert s.breakdown.queue_share == pytest.approx(0.2 / 2.2)
    assert s.output_tokens_source == "server"


def test_summary_without_slo_or_requests() -> None:
    s = MetricsAccumulator().summary(0.0)
    assert s.requests_ok == 0 and s.request_throughput == 0.0
    assert s.ttft is None and s.goodput is None and s.slo_attainment is None and s.breakdown is None
    assert s.output_tokens_source == "none"


@pytest.mark.parametrize(("load", "prompt", "evl", "total", "wait"), [
    (0.1, 0.2, 1.0, 1.3, 0.0),      # every part accounted for
    (0.05, 0.2, 1.0, 2.5, 1.25),    # a request that waited for a runner slot (more requests than num_parallel)
    (0.1, 0.2, 1.0, 1.2999, 0.0),   # rounding never makes a negative wait
])
def test_runner_wait_is_the_part_of_total_no_server_timer_covers(load, prompt, evl, total, wait):
    from ollama_ops.core.bench.metrics import request_parts

    parts = request_parts(load, prompt, evl, total, 0.002)
    assert parts["wait"] == pytest.approx(wait)
    assert list(parts) == ["load", "prompt_eval", "eval", "wait", "queue"]


def test_breakdown_shares_of_a_queued_request_add_up_to_its_e2el():
    from ollama_ops.core.bench.metrics import request_parts, server_breakdown

    parts = {k: [v] for k, v in request_parts(0.05, 0.2, 1.0, 2.5, 0.01).items()}
    b = server_breakdown(parts, [2.51])
    assert b is not None
    assert b.wait_s == pytest.approx(1.25)
    assert sum(share for _, _, share in b.rows()) == pytest.approx(1.0)


def _random_ok(rng, idx: int) -> RequestRecord:  # type: ignore[no-untyped-def]
    ttft = rng.uniform(0.02, 0.4)
    out = rng.randint(1, 20)
    e2el = ttft + (out - 1) * rng.uniform(0.005, 0.02)
    total = e2el - rng.uniform(-0.002, 0.01)  # queue = E2EL − total may be slightly negative
    return RequestRecord(idx=idx, send_time=100.0 + idx * 0.01, ok=True, ttft=ttft, e2el=e2el,
                         itl=[rng.uniform(0.004, 0.03) for _ in range(out - 1)], output_tokens=out,
                         prompt_tokens=5, load_s=rng.choice([0.0, rng.uniform(0.0, 0.05)]),
                         prompt_eval_s=ttft / 3, eval_s=e2el - ttft, total_s=total,
                         queue_s=queue_overhead(e2el, total))


@pytest.mark.parametrize("requests", [50, 9_000])
def test_long_run_summary_matches_the_exact_figures(requests: int) -> None:
    """Past the exact limit the sketches take over: percentiles within 0.1 %, n/mean/min/max exact."""
    import random

    from ollama_ops.core.bench.metrics import BREAKDOWN_LABELS, request_parts, server_breakdown
    from ollama_ops.core.stats import describe

    rng = random.Random(requests)
    records = [_random_ok(rng, i) for i in range(requests)]
    acc = MetricsAccumulator()
    for r in records:
        acc.add(r, r.send_time - 100.0)
    s = acc.summary(10.0)
    tpots = [t for r in records if (t := tpot(r.ttft, r.e2el, r.output_tokens)) is not None]
    expected = {"ttft": describe([r.ttft for r in records]), "e2el": describe([r.e2el for r in records]),
                "tpot": describe(tpots), "itl": describe([g for r in records for g in r.itl])}
    for name, exact in expected.items():
        got = getattr(s, name)
        assert got is not None and exact is not None
        assert (got.n, got.min, got.max) == (exact.n, exact.min, exact.max), name
        assert got.mean == pytest.approx(exact.mean, rel=1e-12)
        for p in ("p50", "p90", "p95", "p99"):
            assert getattr(got, p) == pytest.approx(getattr(exact, p), rel=1e-3), (name, p)
            if requests < 1000:
                assert getattr(got, p) == getattr(exact, p)  # still exact
    parts: dict[str, list[float]] = {k: [] for k in BREAKDOWN_LABELS}
    for r in records:
        for k, v in request_parts(r.load_s, r.prompt_eval_s, r.eval_s, r.total_s, r.queue_s).items():
            parts[k].append(v)
    b, e = s.breakdown, server_breakdown(parts, [r.e2el for r in records])
    assert b is not None and e is not None
    for (label, sec, share), (_, sec_e, share_e) in zip(b.rows(), e.rows(), strict=True):
        assert sec == pytest.approx(sec_e, rel=1e-3, abs=1e-12), label
        assert share == pytest.approx(share_e, rel=1e-3, abs=1e-12), label


def test_chart_series_is_bounded_and_spread_over_the_run() -> None:
    import random

    from ollama_ops.core.bench.metrics import SERIES_POINTS

    rng = random.Random(3)
    acc = MetricsAccumulator()
    for i in range(12_000):
        r = _random_ok(rng, i)
        acc.add(r, float(i))
    acc.add(RequestRecord(idx=12_000, send_time=0.0, ok=True, ttft=None, e2el=None, output_tokens=0), 1.0)
    send, ttft, e2el = acc.chart_series()
    assert SERIES_POINTS // 2 <= len(send) <= SERIES_POINTS and len(send) == len(ttft) == len(e2el)
    step = send[1] - send[0]
    assert send == [i * step for i in range(len(send))]  # every k-th request from the first
    assert send[-1] >= 12_000 - 2 * step


def test_small_run_chart_series_keeps_every_request() -> None:
    acc = MetricsAccumulator()
    for i in range(3):
        acc.add(_ok(i, 0.1 * (i + 1), 1.0, 5, total=0.9), float(i))
    assert acc.chart_series() == ([0.0, 1.0, 2.0], [0.1, 0.2, pytest.approx(0.3)], [1.0, 1.0, 1.0])


def test_accumulator_memory_is_constant_in_the_number_of_requests() -> None:
    import random

    rng = random.Random(5)
    records = [_random_ok(rng, i) for i in range(2000)]
    acc = MetricsAccumulator()
    sizes = []
    for lap in range(10):
        for r in records:
            acc.add(r, float(lap))
        sizes.append(acc.nbytes())
    assert acc.count == 20_000
    # Once every metric is past its exact limit only the pending batches rise and fall (a sawtooth): the peak
    # of any 6,000 requests stays the same.
    assert max(sizes[5:]) <= 1.05 * max(sizes[2:5])
    assert max(sizes) < 1_500_000
