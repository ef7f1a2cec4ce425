"""Sweep planning and the knee (pure parts of `sollama bench --sweep`)."""

from __future__ import annotations

import pytest

from ollama_ops.core.bench.load import LoadSpec
from ollama_ops.core.bench.sweep import SweepStep, sweep_loads
from ollama_ops.core.bench.sweep import knee as _knee


def test_concurrency_doubles_up_to_the_cap() -> None:
    assert [s.concurrency for s in sweep_loads(LoadSpec(concurrency=1), 16)] == [1, 2, 4, 8, 16]
    assert [s.concurrency for s in sweep_loads(LoadSpec(concurrency=3), 20)] == [3, 6, 12]


def test_rates_double() -> None:
    steps = sweep_loads(LoadSpec(rate=0.5), 8)
    assert [s.rate for s in steps] == [0.5, 1.0, 2.0, 4.0]
    assert all(s.open_loop for s in steps)


def _step(i: int, tput: float, meets: bool, gain: float | None) -> SweepStep:
    return SweepStep(step=i, concurrency=2**i, rate=None, run_id=i + 1, status="completed",
                     request_throughput=tput, output_throughput=tput, ttft_p50=None, e2el_p50=None,
                     slo_attainment=None, meets_slo=meets, gain_pct=gain)


@pytest.mark.parametrize(("steps", "knee_run"), [
    ([_step(0, 10, True, None), _step(1, 19, True, 90), _step(2, 20, True, 5)], 2),  # saturated: step before
    ([_step(0, 10, True, None), _step(1, 19, True, 90), _step(2, 30, False, 58)], 2),  # SLO broke at step 3
    ([_step(0, 10, False, None)], None),  # nothing met the SLO
    ([_step(0, 10, True, None), _step(1, 19, True, 90)], 2),  # reached the cap
])
def test_knee(steps: list[SweepStep], knee_run: int | None) -> None:
    knee = _knee(steps)
    assert (knee.run_id if knee else None) == knee_run
