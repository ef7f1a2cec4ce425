"""`sollama bench --sweep`: double the load step by step and find the knee.

Concurrency 1, 2, 4, … (closed loop) or rates R, 2R, 4R, … (open loop); each step is a stored run sharing a
sweep id. The sweep stops when output throughput grows by less than 10% (saturation), when SLO attainment falls
below 90%, or when a step fails. The knee is the highest load that met the SLO, and at saturation the step
before the one that no longer paid off.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ollama_ops.services.bench_runner import LoadSpec

if TYPE_CHECKING:
    from ollama_ops.services.bench import BenchResult

# SLO attainment a sweep step needs to count as meeting the SLO, and the throughput gain below which more load
# is judged useless (saturation).
SLO_ATTAINMENT_TARGET = 0.90
SATURATION_GAIN = 0.10


@dataclass
class SweepStep:
    step: int
    concurrency: int | None
    rate: float | None
    run_id: int
    status: str
    request_throughput: float
    output_throughput: float
    ttft_p50: float | None
    e2el_p50: float | None
    slo_attainment: float | None
    meets_slo: bool
    gain_pct: float | None


@dataclass
class SweepResult:
    sweep_id: str
    steps: list[SweepStep]
    knee: SweepStep | None  # the highest load that met the SLO (or, without one, before saturation)
    stop_reason: str


def sweep_loads(spec: LoadSpec, highest: int) -> list[LoadSpec]:
    """Concurrency 1, 2, 4, … up to `highest` (from --concurrency on), or rates R, 2R, 4R, … (`highest` × R)."""
    steps = []
    factor = 1
    while factor <= highest:
        if spec.open_loop:
            steps.append(dataclasses.replace(spec, rate=(spec.rate or 1) * factor))
        elif spec.concurrency * factor <= highest:
            steps.append(dataclasses.replace(spec, concurrency=spec.concurrency * factor))
        factor *= 2
    return steps or [spec]


async def run_sweep(config: Any, run_step: Callable[[LoadSpec, str, int], Awaitable[BenchResult]]) -> BenchResult:
    """Run `run_step` at doubling loads until saturation, a broken SLO, a failed step or `config.sweep_max`;
    the last step's result carries the sweep (steps, knee, why it stopped)."""
    sweep_id = uuid.uuid4().hex[:12]
    steps: list[SweepStep] = []
    result: BenchResult | None = None
    stop_reason = "reached the highest load"
    for i, spec in enumerate(sweep_loads(config.load, config.sweep_max)):
        result = await run_step(spec, sweep_id, i)
        s = result.summary
        previous = steps[-1] if steps else None
        gain = (None if previous is None or previous.output_throughput <= 0
                else s.output_throughput / previous.output_throughput - 1)
        meets = not config.slo or (s.slo_attainment or 0) >= SLO_ATTAINMENT_TARGET
        steps.append(SweepStep(step=i, concurrency=None if spec.open_loop else spec.concurrency, rate=spec.rate,
                               run_id=result.run_id, status=result.status,
                               request_throughput=s.request_throughput, output_throughput=s.output_throughput,
                               ttft_p50=s.ttft.p50 if s.ttft else None, e2el_p50=s.e2el.p50 if s.e2el else None,
                               slo_attainment=s.slo_attainment, meets_slo=meets and result.status == "completed",
                               gain_pct=None if gain is None else gain * 100))
        if result.status != "completed":
            stop_reason = f"run {result.status}"
            break
        if not meets:
            stop_reason = f"SLO attainment below {SLO_ATTAINMENT_TARGET:.0%}"
            break
        if gain is not None and gain < SATURATION_GAIN:
            stop_reason = f"saturated: output throughput grew {gain:.0%} (< {SATURATION_GAIN:.0%})"
            break
    assert result is not None
    knee = _knee(steps)
    result.sweep = SweepResult(sweep_id=sweep_id, steps=steps, knee=knee, stop_reason=stop_reason)
    return result


def _knee(steps: list[SweepStep]) -> SweepStep | None:
    """The highest load that met the SLO; at saturation, the step before the one that gained < 10%."""
    good = [s for s in steps if s.meets_slo]
    if not good:
        return None
    last = good[-1]
    if last.gain_pct is not None and last.gain_pct < SATURATION_GAIN * 100 and len(good) > 1:
        return good[-2]
    return last
