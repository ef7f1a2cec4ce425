"""The memory budget and the plan built on it: which models fit, alone and together, and which OLLAMA_* settings
to run the daemon with (pure; the numbers come from `core.memory.predict`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ollama_ops.core.units import format_bytes, parse_reserve

if TYPE_CHECKING:  # the formula is imported where a plan is made, not for a budget (status needs only that)
    from ollama_ops.core.memory import Footprint, ModelShape

GIB = 2**30
MIN_PLANNED_CTX = 2048
OLLAMA_DEFAULT_MAX_LOADED = 3  # Ollama's automatic OLLAMA_MAX_LOADED_MODELS: 3 per GPU, 3 on CPU


@dataclass
class Budget:
    """Memory the daemon may use: total RAM minus the reserve, plus GPU VRAM where there is some (bytes)."""

    total_ram: int
    reserve: int
    reserve_spec: str  # as configured: "20%" or "2GiB"
    ram: int
    vram: int
    gpus: int
    total: int


@dataclass
class ModelFit:
    """One model's predicted footprint at the planned settings."""

    name: str
    architecture: str
    engine: str  # "llama.cpp" or "ollama": which runner Ollama uses
    file_size: int
    num_ctx: int
    parallel: int
    kv_cache_type: str
    weights: int
    kv_cache: int
    graph: int
    ollama_size: int  # what /api/ps `size` will show
    footprint: int  # the conservative need the fit decisions use
    fits_alone: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class Recommendation:
    var: str
    value: str
    reason: str
    pinned: bool = False  # the config sets this; `sollama start` uses the config's value


@dataclass
class PlanCore:
    num_ctx: int
    parallel: int
    kv_cache_type: str
    models: list[ModelFit]
    together: int  # bytes for all the models loaded at once
    fits_together: bool
    max_together: int  # how many of the largest models fit at once
    recommendations: list[Recommendation]


@dataclass
class Pins:
    """Values the config fixes (server.*); None = free for the plan to choose."""

    context_length: int | None = None
    num_parallel: int | None = None
    kv_cache_type: str | None = None
    max_loaded_models: int | None = None
    flash_attention: bool | None = None


def compute_budget(total_ram: int, reserve: str | int, vram: int = 0, gpus: int = 0) -> Budget:
    """Budget = total RAM − reserve (bytes or a percent of RAM) + VRAM."""
    kind, value = parse_reserve(reserve)
    reserved = int(total_ram * value / 100) if kind == "percent" else int(value)
    reserved = min(reserved, total_ram)
    ram = total_ram - reserved
    spec = reserve if isinstance(reserve, str) else format_bytes(reserve)
    return Budget(total_ram=total_ram, reserve=reserved, reserve_spec=str(spec), ram=ram, vram=vram, gpus=gpus,
                  total=ram + vram)


def default_context(vram: int) -> int:
    """Ollama's own default num_ctx by total VRAM (server/routes.go): 4k, 32k from 23 GiB, 256k from 47 GiB."""
    if vram >= 47 * GIB:
        return 262144
    if vram >= 23 * GIB:
        return 32768
    return 4096


def default_max_loaded(budget: Budget) -> int:
    """Without models to measure: one model per 8 GiB of budget, at most Ollama's default of 3."""
    return max(1, min(OLLAMA_DEFAULT_MAX_LOADED, budget.total // (8 * GIB)))


def _fit(shape: ModelShape, fp: Footprint, budget: Budget) -> ModelFit:
    return ModelFit(name=shape.name, architecture=shape.architecture, engine=shape.engine, file_size=shape.file_size,
                    num_ctx=fp.num_ctx, parallel=fp.parallel, kv_cache_type=fp.kv_cache_type, weights=fp.weights,
                    kv_cache=fp.kv_cache, graph=fp.graph, ollama_size=fp.ollama_size, footprint=fp.footprint,
                    fits_alone=fp.footprint <= budget.total, notes=list(fp.notes))


def max_together(footprints: list[int], budget: int) -> int:
    """How many models fit at once in the worst case: the largest k whose k biggest footprints sum ≤ budget."""
    used, count = 0, 0
    for size in sorted(footprints, reverse=True):
        if used + size > budget:
            break
        used += size
        count += 1
    return count


def _options(start: int, fixed: bool) -> list[int]:
    if fixed or start <= MIN_PLANNED_CTX:
        return [start]
    out = [start]
    while out[-1] // 2 >= MIN_PLANNED_CTX:
        out.append(out[-1] // 2)
    return out


def make_plan(shapes: list[ModelShape], budget: Budget, *, num_ctx: int | None = None, parallel: int | None = None,
              kv_cache_type: str | None = None, pins: Pins | None = None) -> PlanCore:
    """Choose num_ctx / KV cache type so that the largest model that can fit does, then size the rest.

    Values given here (flags) or pinned by the config are kept; the others start from Ollama's defaults and are
    lowered (context halved down to 2048, KV cache quantized) only when that is what makes a model fit."""
    pins = pins or Pins()
    gpu = budget.vram > 0
    ctx_fixed = num_ctx or pins.context_length
    ctx0 = ctx_fixed or default_context(budget.vram)
    par = parallel or pins.num_parallel or 1
    kv_fixed = kv_cache_type or pins.kv_cache_type
    # Quantized KV only works with flash attention; sollama start turns it on unless the config pins it off.
    fa = pins.flash_attention
    quantize = not kv_fixed and fa is not False
    kv_choices = [kv_fixed or "f16"] + (["q8_0"] if quantize else [])
    candidates = [(ctx, kv) for ctx in _options(ctx0, bool(ctx_fixed)) for kv in kv_choices]
    if quantize:
        candidates.append((candidates[-1][0], "q4_0"))

    def fa_for(kv: str) -> bool | None:
        return fa if fa is not None or kv == "f16" else True

    from ollama_ops.core.memory import predict

    def footprints(ctx: int, kv: str) -> list[Footprint]:
        return [predict(s, ctx, par, kv, gpu=gpu, flash_attention=fa_for(kv)) for s in shapes]

    # The largest model that can fit at the most compact setting decides.
    compact = footprints(*candidates[-1])
    fittable = [i for i, fp in enumerate(compact) if fp.footprint <= budget.total]
    chosen = candidates[0]
    if fittable:
        for ctx, kv in candidates:
            fps = footprints(ctx, kv)
            if all(fps[i].footprint <= budget.total for i in fittable):
                chosen = (ctx, kv)
                break
    ctx, kv = chosen
    fits = [_fit(s, fp, budget) for s, fp in zip(shapes, footprints(ctx, kv), strict=True)]
    together = sum(f.footprint for f in fits)
    k = max_together([f.footprint for f in fits if f.fits_alone], budget.total)
    recs = _recommend(fits, budget, ctx, par, kv, k, pins, shapes)
    return PlanCore(num_ctx=ctx, parallel=par, kv_cache_type=kv, models=fits, together=together,
                    fits_together=together <= budget.total, max_together=k, recommendations=recs)


def _recommend(fits: list[ModelFit], budget: Budget, ctx: int, par: int, kv: str, k: int, pins: Pins,
               shapes: list[ModelShape]) -> list[Recommendation]:
    fitting = [f for f in fits if f.fits_alone]
    if not fits:
        loaded = default_max_loaded(budget)
        why_loaded = f"no models to measure: one per 8 GiB of the {format_bytes(budget.total)} budget, at most 3"
    elif not fitting:
        loaded = 1
        why_loaded = f"no installed model fits the {format_bytes(budget.total)} budget alone"
    elif k < len(fitting):
        loaded = max(1, k)
        why_loaded = f"the {k} largest models fit together in {format_bytes(budget.total)}, one more would not"
    else:
        loaded = max(k, OLLAMA_DEFAULT_MAX_LOADED)
        n = len(fitting)
        why_loaded = (f"{'the one model fits' if n == 1 else f'all {n} models fit together'} with room to spare "
                      f"({format_bytes(sum(f.footprint for f in fitting))} of {format_bytes(budget.total)}); "
                      "Ollama's default")
    largest = max(fitting or fits, key=lambda f: f.footprint, default=None)
    if largest is not None:
        per_slot = largest.kv_cache // max(1, largest.parallel)
        why_par = f"each extra slot adds {format_bytes(per_slot)} of KV cache to {largest.name}"
        why_ctx = f"{largest.name} needs {format_bytes(largest.footprint)} at this context"
    else:
        why_par = "Ollama's default"
        why_ctx = "Ollama's default for this much VRAM" if budget.vram else "Ollama's default on CPU"
    why_kv = "full precision fits" if kv == "f16" else "a quantized KV cache is what makes the largest model fit"
    recs = [
        Recommendation("OLLAMA_MAX_LOADED_MODELS", str(loaded), why_loaded, pins.max_loaded_models is not None),
        Recommendation("OLLAMA_NUM_PARALLEL", str(par), why_par, pins.num_parallel is not None),
        Recommendation("OLLAMA_CONTEXT_LENGTH", str(ctx), why_ctx, pins.context_length is not None),
        Recommendation("OLLAMA_KV_CACHE_TYPE", kv, why_kv, pins.kv_cache_type is not None),
    ]
    from ollama_ops.core.memory import effective_kv_type

    if kv != "f16" and any(effective_kv_type(s, kv, True) == kv for s in shapes):
        recs.append(Recommendation("OLLAMA_FLASH_ATTENTION", "1", f"a {kv} KV cache needs flash attention",
                                   pins.flash_attention is not None))
    return recs
