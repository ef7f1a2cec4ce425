"""`sollama memory`: the budget of this machine, each model's predicted footprint, and the OLLAMA_* settings to
run with. Also the contract `sollama start` uses: `start_env(settings)` and `budget(settings)`, which need no
running server (they read the last plan saved in `state_dir/memory-plan.json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ollama_ops import paths
from ollama_ops.core.memory import shape_from_show
from ollama_ops.core.memory_plan import (
    Budget,
    ModelFit,
    Pins,
    Recommendation,
    compute_budget,
    default_context,
    default_max_loaded,
    make_plan,
)
from ollama_ops.errors import ModelNotFound, SollamaError

PLAN_FILE = "memory-plan.json"
PLAN_SCHEMA = 1
ENV_KEYS = ("OLLAMA_MAX_LOADED_MODELS", "OLLAMA_NUM_PARALLEL", "OLLAMA_CONTEXT_LENGTH", "OLLAMA_KV_CACHE_TYPE",
            "OLLAMA_FLASH_ATTENTION")


@dataclass
class MemoryPlan:
    """What `sollama memory` reports (and saves for `sollama start`)."""

    schema: int
    created_at: str
    host: str
    budget: Budget
    num_ctx: int
    parallel: int
    kv_cache_type: str
    models: list[ModelFit]
    together: int
    fits_together: bool
    max_together: int
    recommendations: list[Recommendation]
    env: dict[str, str]  # what `sollama start` adds (recommendations the config does not pin)
    skipped: list[str] = field(default_factory=list)  # models that could not be read, with the reason
    saved_to: str | None = None


def plan_path() -> Path:
    return paths.state_dir() / PLAN_FILE


def pins_from(settings: Any) -> Pins:
    s = settings.server
    return Pins(context_length=s.context_length, num_parallel=s.num_parallel, kv_cache_type=s.kv_cache_type,
                max_loaded_models=s.max_loaded_models, flash_attention=s.flash_attention)


def machine_budget(settings: Any) -> Budget:
    """This machine's budget: RAM facts (psutil), GPUs (nvidia-smi), the configured reserve."""
    from ollama_ops.edges.system import gpu_facts, memory_facts

    gpus = gpu_facts()
    return compute_budget(memory_facts().total, settings.memory.reserve, sum(g.total for g in gpus), len(gpus))


def budget(settings: Any) -> int:
    """Bytes the daemon may use on this machine (RAM − reserve + VRAM)."""
    return machine_budget(settings).total


def plan_memory(client: Any, settings: Any, *, models: list[str] | None = None, num_ctx: int | None = None,
                parallel: int | None = None, kv_cache_type: str | None = None, save: bool = False) -> MemoryPlan:
    """Predict every installed model (or `models`) at the chosen settings and recommend OLLAMA_* values.
    `save` stores the plan for `sollama start`, only when every model fits (see `check_savable`)."""
    from ollama_ops.services.models import not_found

    tags = {str(m.get("name") or m.get("model")): int(m.get("size") or 0) for m in client.tags()}
    names = models or list(tags)
    shapes, skipped = [], []
    for name in names:
        try:
            shown = client.show(name)
        except ModelNotFound as exc:
            if models:
                raise not_found(client, exc) from None
            skipped.append(f"{name}: not found")
            continue
        size = tags.get(name) or tags.get(f"{name}:latest") or 0
        shape = shape_from_show(name, shown, size)
        if shape.block_count == 0:
            skipped.append(f"{name}: no layer metadata ({shape.architecture})")
            continue
        shapes.append(shape)
    pins = pins_from(settings)
    machine = machine_budget(settings)
    core = make_plan(shapes, machine, num_ctx=num_ctx, parallel=parallel,
                     kv_cache_type=kv_cache_type, pins=pins)
    plan = MemoryPlan(
        schema=PLAN_SCHEMA, created_at=datetime.now(UTC).isoformat(timespec="seconds"), host=settings.server.host,
        budget=machine, num_ctx=core.num_ctx, parallel=core.parallel,
        kv_cache_type=core.kv_cache_type, models=core.models, together=core.together,
        fits_together=core.fits_together, max_together=core.max_together, recommendations=core.recommendations,
        env={r.var: r.value for r in core.recommendations if not r.pinned}, skipped=skipped)
    if save and unfit_reason(plan) is None:
        plan.saved_to = str(save_plan(plan))
    return plan


def unfit_reason(plan: MemoryPlan) -> str | None:
    """Why `plan` must not be saved (a model that does not fit even alone), or None. A plan in which the models
    fit only one at a time is fine: it recommends OLLAMA_MAX_LOADED_MODELS accordingly."""
    from ollama_ops.core.units import format_bytes

    unfit = [m for m in plan.models if not m.fits_alone]
    if not unfit:
        return None
    names = ", ".join(f"{m.name} needs {format_bytes(m.footprint)}" for m in unfit)
    return (f"{names} at num_ctx {plan.num_ctx}, {plan.parallel} parallel slot(s), {plan.kv_cache_type} KV cache; "
            f"the budget is {format_bytes(plan.budget.total)}")


def check_savable(plan: MemoryPlan) -> None:
    """Raise when `--save` was asked for a plan that does not fit: `sollama start` would launch with it."""
    reason = unfit_reason(plan)
    if reason is not None:
        raise SollamaError(f"not saving a plan that does not fit: {reason}",
                           hint="`sollama start` keeps the plan it had; lower --num-ctx or --parallel, or choose "
                                "a smaller --kv-cache-type")


def save_plan(plan: MemoryPlan) -> Path:
    from ollama_ops.jsonable import to_jsonable

    path = plan_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(to_jsonable(plan), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise SollamaError(f"cannot save the memory plan to {path}: {exc.strerror or exc}") from exc
    return path


def load_saved_env(path: Path | None = None) -> dict[str, str] | None:
    """The recommendations of the last saved plan, or None when there is none (or it is unreadable)."""
    path = path or plan_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    recs = data.get("recommendations") if isinstance(data, dict) else None
    if not isinstance(recs, list):
        return None
    env = {}
    for rec in recs:
        if isinstance(rec, dict) and rec.get("var") in ENV_KEYS and isinstance(rec.get("value"), str):
            env[rec["var"]] = rec["value"]
    return env or None


def default_env(settings: Any) -> dict[str, str]:
    """RAM-only recommendations, for when no plan was saved yet."""
    b = machine_budget(settings)
    return {"OLLAMA_MAX_LOADED_MODELS": str(default_max_loaded(b)), "OLLAMA_NUM_PARALLEL": "1",
            "OLLAMA_CONTEXT_LENGTH": str(default_context(b.vram)), "OLLAMA_KV_CACHE_TYPE": "f16"}


def start_env(settings: Any) -> dict[str, str]:
    """The OLLAMA_* variables `sollama start` should add: the saved plan's (else RAM-only defaults), minus any
    the config pins (server.* set), which `start` takes from the config itself."""
    env = load_saved_env() or default_env(settings)
    pins = pins_from(settings)
    pinned = {"OLLAMA_MAX_LOADED_MODELS": pins.max_loaded_models, "OLLAMA_NUM_PARALLEL": pins.num_parallel,
              "OLLAMA_CONTEXT_LENGTH": pins.context_length, "OLLAMA_KV_CACHE_TYPE": pins.kv_cache_type,
              "OLLAMA_FLASH_ATTENTION": pins.flash_attention}
    return {k: v for k, v in env.items() if pinned.get(k) is None}
