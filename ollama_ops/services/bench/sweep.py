"""`sollama bench --sweep`: run one stored bench run per load step until the sweep's arithmetic says stop.

Which loads, how a step scores, when to stop and where the knee is are pure (`core.bench.sweep`); this module only
runs the steps in order. A sweep fails as a CI step when any of its steps does (`BenchResult.failure`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from ollama_ops.core.bench.load import LoadSpec
from ollama_ops.core.bench.sweep import SweepResult, SweepStep, knee, score_step, stop_reason, sweep_loads
from ollama_ops.services.bench.result import BenchResult


async def run_sweep(load: LoadSpec, highest: int, has_slo: bool,
                    run_step: Callable[[LoadSpec, str, int], Awaitable[BenchResult]]) -> BenchResult:
    """Run `run_step` at doubling loads until saturation, a broken SLO, a failed step or `highest`; the last
    step's result carries the sweep (steps, knee, why it stopped)."""
    sweep_id = uuid.uuid4().hex[:12]
    steps: list[SweepStep] = []
    result: BenchResult | None = None
    why = "reached the highest load"
    failure: str | None = None  # the first step that failed as a CI step fails the sweep
    for i, spec in enumerate(sweep_loads(load, highest)):
        result = await run_step(spec, sweep_id, i)
        if failure is None and result.failure is not None:
            failure = f"step {i + 1} (run #{result.run_id}): {result.failure}"
        step = score_step(i, spec, result.run_id, result.status, result.summary, steps[-1] if steps else None,
                          has_slo)
        steps.append(step)
        reason = stop_reason(step)
        if reason is not None:
            why = reason
            break
    assert result is not None  # sweep_loads always gives at least one step
    result.sweep = SweepResult(sweep_id=sweep_id, steps=steps, knee=knee(steps), stop_reason=why)
    result.failure = failure
    return result
