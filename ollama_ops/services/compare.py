"""`sollama report --compare`: two runs (or two pools of runs) compared metric by metric, with a verdict.

Each metric's change is a percentile-bootstrap 95% interval over per-request samples (see `core.stats`);
"regressed" means the whole interval lies beyond the threshold in the bad direction. Output throughput is compared
as the per-stream token rate sum(output tokens) / sum(E2EL), resampled by request (documented in `core.stats`).
ITL gaps are pooled across requests and resampled one by one, which narrows its interval when the gaps of one
request move together; that is why it is not gated by default. A verdict needs `core.stats.min_samples` samples
a side (5 for a median, 10 for p90); below that a metric reads "n/a" and the comparison says so.

Selectors: a run id ("12") or "label:NAME" (every finished run with that label, pooled). Defaults: the candidate
is the latest run, the base the previous run with the same model, api and load shape (`core.bench.load.load_key`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ollama_ops.core.bench.load import describe_load, load_key
from ollama_ops.core.stats import (
    Change,
    Verdict,
    bootstrap_change,
    bootstrap_ratio_change,
    compute,
    min_samples,
    ratio,
    verdict,
)
from ollama_ops.errors import ConfigError, GateUndecided, RegressionDetected, SollamaError, UsageError
from ollama_ops.services.report import RunFigures, metric_samples, parse_run_id, pooled_figures

if TYPE_CHECKING:
    from ollama_ops.edges.store import RequestRecord, RunRecord, Store


@dataclass(frozen=True)
class MetricSpec:
    key: str
    title: str
    source: str          # a metric_samples() key, or "rate" for tokens / e2el
    statistic: str       # "median", "pNN" or "ratio"
    unit: str            # "s" or "tok/s"
    higher_is_better: bool = False


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("ttft_p50", "TTFT p50", "ttft", "median", "s"),
    MetricSpec("ttft_p90", "TTFT p90", "ttft", "p90", "s"),
    MetricSpec("tpot_p50", "TPOT p50", "tpot", "median", "s"),
    MetricSpec("itl_p50", "ITL p50", "itl", "median", "s"),
    MetricSpec("e2el_p50", "E2EL p50", "e2el", "median", "s"),
    MetricSpec("e2el_p90", "E2EL p90", "e2el", "p90", "s"),
    MetricSpec("output_throughput", "Output tok/s per stream", "rate", "ratio", "tok/s", higher_is_better=True),
)
METRIC_KEYS = tuple(m.key for m in METRICS)


@dataclass
class RunSet:
    """One side of a comparison: one run, or several pooled."""

    selector: str
    run_ids: list[int]
    model: str
    label: str | None
    load: str
    figures: RunFigures


@dataclass
class MetricComparison:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    gated: bool
    base: float | None
    candidate: float | None
    change: Change | None
    verdict: Verdict | Literal["n/a"]  # "n/a": no data, or too few samples
    base_n: int = 0
    candidate_n: int = 0
    min_n: int = 0       # samples per side a verdict needs (`core.stats.min_samples`)


@dataclass
class Comparison:
    base: RunSet
    candidate: RunSet
    threshold_pct: float
    confidence: float
    n_boot: int
    metrics: list[MetricComparison]
    regressed: list[str] = field(default_factory=list)   # gated metrics whose verdict is "regressed"
    undecided: list[str] = field(default_factory=list)   # why the gate cannot decide (a side, a gated metric)
    warnings: list[str] = field(default_factory=list)


def compare(store: Store, base: str | None = None, candidate: str | None = None, *, threshold_pct: float,
            gated_metrics: Sequence[str], label: str | None = None, model: str | None = None,
            n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> Comparison:
    """Compare BASE with CANDIDATE (selectors; see the module docstring). Raises UsageError when there is
    nothing to compare and ConfigError for an unknown gated metric."""
    unknown = [m for m in gated_metrics if m not in METRIC_KEYS]
    if unknown:
        raise ConfigError(f"report.gated_metrics: unknown metric {', '.join(map(repr, unknown))}",
                          hint=f"known: {', '.join(METRIC_KEYS)}")
    base_runs, cand_runs = _resolve(store, base, candidate, label=label, model=model)
    base_rows = [store.requests(r.id) for r in base_runs]
    cand_rows = [store.requests(r.id) for r in cand_runs]
    base_set = _run_set(base or _id_selector(base_runs), base_runs, base_rows)
    cand_set = _run_set(candidate or _id_selector(cand_runs), cand_runs, cand_rows)
    base_samples = metric_samples(r for rows in base_rows for r in rows)
    cand_samples = metric_samples(r for rows in cand_rows for r in rows)
    metrics = [_compare_metric(spec, base_samples, cand_samples, spec.key in gated_metrics, threshold_pct,
                               n_boot=n_boot, seed=seed + i, confidence=confidence)
               for i, spec in enumerate(METRICS)]
    result = Comparison(base=base_set, candidate=cand_set, threshold_pct=threshold_pct, confidence=confidence,
                        n_boot=n_boot, metrics=metrics,
                        regressed=[m.key for m in metrics if m.gated and m.verdict == "regressed"])
    result.undecided = _undecided(result)
    result.warnings = _warnings(base_runs, cand_runs, base_set, cand_set)
    few = [f"{m.key} (n={min(m.base_n, m.candidate_n)} < {m.min_n})" for m in metrics
           if m.change is not None and m.verdict == "n/a"]
    if few:
        result.warnings.append(f"too few samples for a verdict on {', '.join(few)}: run more requests")
    return result


def gate_error(comparison: Comparison) -> SollamaError | None:
    """What `--fail-on-regression` ends with: a regression of a gated metric (exit 6); else, when the comparison
    cannot decide (a side without a successful request, a gated metric with too few samples), GateUndecided
    (exit 1): a gate fails closed. None when it passes."""
    if comparison.regressed:
        worst = ", ".join(f"{m.key} {m.change.point_pct:+.1f}%" for m in comparison.metrics
                          if m.key in comparison.regressed and m.change is not None)
        return RegressionDetected(f"performance regressed beyond {comparison.threshold_pct:g}%: {worst}")
    if comparison.undecided:
        return GateUndecided(f"cannot decide whether performance regressed: {'; '.join(comparison.undecided)}",
                             hint="run more requests, or compare other runs")
    return None


def _side(kind: str, side: RunSet) -> str:
    return f"{kind} {side.selector}" if side.selector.startswith("label:") else f"{kind} run {side.selector}"


def _undecided(c: Comparison) -> list[str]:
    """Why the gate cannot decide: each side without a successful request, then each gated metric without a
    verdict (too few samples a side, or no value to compare)."""
    reasons = []
    for kind, side in (("base", c.base), ("candidate", c.candidate)):
        if side.figures.ok == 0:
            kinds = ", ".join(f"{k} ×{n}" for k, n in side.figures.errors.items())
            reasons.append(f"{_side(kind, side)} has no successful request" + (f" ({kinds})" if kinds else ""))
    if reasons:
        return reasons
    for m in c.metrics:
        if not m.gated or m.verdict != "n/a":
            continue
        short = [f"{_side(kind, side)} has {n}" for kind, side, n in (("base", c.base, m.base_n),
                                                                       ("candidate", c.candidate, m.candidate_n))
                 if n < m.min_n]
        if short:
            reasons.append(f"{m.key} needs {m.min_n} samples a side: {', '.join(short)}")
        else:
            reasons.append(f"{m.key}: no value to compare (base {m.base}, candidate {m.candidate})")
    return reasons


def _compare_metric(spec: MetricSpec, base: dict[str, list[float]], cand: dict[str, list[float]], gated: bool,
                    threshold_pct: float, *, n_boot: int, seed: int, confidence: float) -> MetricComparison:
    out = MetricComparison(key=spec.key, title=spec.title, unit=spec.unit, higher_is_better=spec.higher_is_better,
                           gated=gated, base=None, candidate=None, change=None, verdict="n/a")
    if spec.source == "rate":
        bn, bd, cn, cd = base["tokens"], base["e2el_t"], cand["tokens"], cand["e2el_t"]
        out.base_n, out.candidate_n = len(bn), len(cn)
        if bn and sum(bd) > 0:
            out.base = ratio(bn, bd)
        if cn and sum(cd) > 0:
            out.candidate = ratio(cn, cd)
        if out.base and out.candidate is not None:
            out.change = bootstrap_ratio_change(bn, bd, cn, cd, n_boot=n_boot, seed=seed, confidence=confidence)
    else:
        b, c = base[spec.source], cand[spec.source]
        out.base_n, out.candidate_n = len(b), len(c)
        out.base = compute(b, spec.statistic) if b else None
        out.candidate = compute(c, spec.statistic) if c else None
        if out.base and out.candidate is not None:
            out.change = bootstrap_change(b, c, spec.statistic, n_boot=n_boot, seed=seed, confidence=confidence)
    out.min_n = min_samples(spec.statistic)
    if out.change is not None and min(out.base_n, out.candidate_n) >= out.min_n:
        out.verdict = verdict(out.change, threshold_pct, spec.higher_is_better)
    return out


# -- choosing the runs -----------------------------------------------------------------------------------------

def _finished(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Runs that are not still being written and have at least one measured request."""
    return [r for r in runs if r.status != "running" and r.request_count > 0]


def _select(store: Store, selector: str) -> list[RunRecord]:
    text = selector.strip()
    if text.startswith("label:"):
        name = text[len("label:"):]
        runs = _finished(store.runs(label=name))
        if not runs:
            raise UsageError(f"no finished bench run with label '{name}'", hint="see `sollama report`")
        return runs
    run_id = parse_run_id(text)
    if run_id is not None:
        return [store.run(run_id)]
    raise UsageError(f"cannot read run selector '{selector}'", hint="use a run id (12) or label:NAME")


def _resolve(store: Store, base: str | None, candidate: str | None, *, label: str | None,
             model: str | None) -> tuple[list[RunRecord], list[RunRecord]]:
    if base is not None and candidate is not None:
        return _select(store, base), _select(store, candidate)
    history = _finished(store.runs(label=label, model=model))
    if base is not None:
        base_runs = _select(store, base)
        ids = {r.id for r in base_runs}
        rest = [r for r in history if r.id not in ids]
        if not rest:
            raise UsageError(f"no finished run besides {base} to compare with",
                             hint="run `sollama bench` again, or name the candidate")
        return base_runs, [rest[-1]]
    if not history:
        raise UsageError("no finished bench runs to compare", hint="run `sollama bench -m MODEL` twice")
    latest = history[-1]
    earlier = [r for r in history[:-1] if load_key(r) == load_key(latest)]
    if not earlier:
        raise UsageError(f"no earlier run with the same model and load settings as run {latest.id}",
                         hint=f"name a base: sollama report --compare BASE {latest.id}")
    return [earlier[-1]], [latest]


def _id_selector(runs: Sequence[RunRecord]) -> str:
    return ",".join(str(r.id) for r in runs)


def _run_set(selector: str, runs: list[RunRecord], rows: list[list[RequestRecord]]) -> RunSet:
    models = sorted({r.model for r in runs})
    labels = sorted({r.label for r in runs if r.label})
    loads = sorted({describe_load(r.load) for r in runs})
    return RunSet(selector=selector, run_ids=[r.id for r in runs], model=", ".join(models),
                  label=", ".join(labels) or None, load=", ".join(loads), figures=pooled_figures(rows))


def _warnings(base_runs: list[RunRecord], cand_runs: list[RunRecord], base: RunSet, cand: RunSet) -> list[str]:
    notes = []
    overlap = set(base.run_ids) & set(cand.run_ids)
    if overlap:
        notes.append(f"run(s) {', '.join(map(str, sorted(overlap)))} on both sides")
    keys = {load_key(r) for r in [*base_runs, *cand_runs]}
    if len({k[0] for k in keys}) > 1:
        notes.append(f"different models: {base.model} vs {cand.model}")
    elif len(keys) > 1:
        notes.append(f"different load settings: {base.load} vs {cand.load}")
    for side in (base, cand):
        if side.figures.failed:
            notes.append(f"run(s) {','.join(map(str, side.run_ids))}: {side.figures.failed} failed "
                         f"request(s) excluded")
    for runs in (base_runs, cand_runs):
        for r in runs:
            if r.status != "completed":
                notes.append(f"run {r.id} is {r.status}")
    clocks = {f"run {r.id}": (r.summary or {}).get("arrival_clock") for r in [*base_runs, *cand_runs]}
    if len({c for c in clocks.values() if c}) > 1:  # runs stored before the field existed say nothing
        shown = ", ".join(f"{k}: {v}" for k, v in clocks.items() if v)
        notes.append(f"chunk arrivals were clocked differently ({shown}): TTFT/ITL differences of a few ms may be "
                     "the client's own backlog, not the server")
    return notes

