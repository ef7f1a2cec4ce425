"""Bench metric math: per-request latencies, SLO parsing and goodput, the run summary."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.bench_model import RequestRecord
from ollama_ops.core.bench_metrics import (
    SLO,
    MetricsAccumulator,
    meets_slo,
    parse_slo,
    queue_overhead,
    request_latencies,
    tpot,
)


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
    from ollama_ops.core.bench_metrics import request_parts

    parts = request_parts(load, prompt, evl, total, 0.002)
    assert parts["wait"] == pytest.approx(wait)
    assert list(parts) == ["load", "prompt_eval", "eval", "wait", "queue"]


def test_breakdown_shares_of_a_queued_request_add_up_to_its_e2el():
    from ollama_ops.core.bench_metrics import request_parts, server_breakdown

    parts = {k: [v] for k, v in request_parts(0.05, 0.2, 1.0, 2.5, 0.01).items()}
    b = server_breakdown(parts, [2.51])
    assert b is not None
    assert b.wait_s == pytest.approx(1.25)
    assert sum(share for _, _, share in b.rows()) == pytest.approx(1.0)
