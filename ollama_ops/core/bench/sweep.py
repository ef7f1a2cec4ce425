"""The arithmetic of `sollama bench --sweep` (pure): which loads to try, how one step scores, when to stop, the knee.

Concurrency 1, 2, 4, … (closed loop) or rates R, 2R, 4R, … (open loop); each step is a stored run sharing a
sweep id. The sweep stops when output throughput grows by less than 10% (saturation), when SLO attainment falls
below 90%, or when a step fails. The knee is the highest load that met the SLO, and at saturation the step
before the one that no longer paid off. `services.bench.sweep` runs the steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ollama_ops.core.bench.load import LoadSpec
from ollama_ops.core.bench.metrics import BenchSummary

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


def score_step(i: int, spec: LoadSpec, run_id: int, status: str, summary: BenchSummary,
               previous: SweepStep | None, has_slo: bool) -> SweepStep:
    """One finished step: its figures, its throughput gain over the previous step, whether it met the SLO."""
    s = summary
    gain = (None if previous is None or previous.output_throughput <= 0
            else s.output_throughput / previous.output_throughput - 1)
    meets = not has_slo or (s.slo_attainment or 0) >= SLO_ATTAINMENT_TARGET
    return SweepStep(step=i, concurrency=None if spec.open_loop else spec.concurrency, rate=spec.rate,
                     run_id=run_id, status=status, request_throughput=s.request_throughput,
                     output_throughput=s.output_throughput, ttft_p50=s.ttft.p50 if s.ttft else None,
                     e2el_p50=s.e2el.p50 if s.e2el else None, slo_attainment=s.slo_attainment,
                     meets_slo=meets and status == "completed", gain_pct=None if gain is None else gain * 100)


def stop_reason(step: SweepStep) -> str | None:
    """Why the sweep ends after `step` (a failed run, a broken SLO, saturation), or None to go on."""
    if step.status != "completed":
        return f"run {step.status}"
    if not step.meets_slo:
        return f"SLO attainment below {SLO_ATTAINMENT_TARGET:.0%}"
    if step.gain_pct is not None and step.gain_pct < SATURATION_GAIN * 100:
        return f"saturated: output throughput grew {step.gain_pct / 100:.0%} (< {SATURATION_GAIN:.0%})"
    return None


def knee(steps: list[SweepStep]) -> SweepStep | None:
    """The highest load that met the SLO; at saturation, the step before the one that gained < 10%."""
    good = [s for s in steps if s.meets_slo]
    if not good:
        return None
    last = good[-1]
    if last.gain_pct is not None and last.gain_pct < SATURATION_GAIN * 100 and len(good) > 1:
        return good[-2]
    return last
