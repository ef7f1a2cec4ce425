"""Synthetic stored runs for the HTML report tests (written with the store's public API), and what a page holds."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

from ollama_ops.edges.store import RequestRecord, RunMeta, Store

SYSTEM = {"cpu": "Test CPU", "cores": 2, "ram": 24 * 2**30, "gpu": []}


def add_run(store: Store, *, n: int = 200, scale: float = 1.0, seed: int = 0, label: str | None = None,
            concurrency: int = 4, sweep_id: str | None = None, step: int | None = None, failed: int = 0,
            summary: dict | None = None, gaps_per_request: int = 15) -> int:
    """A run of `n` ok requests (+ `failed` timeouts): TTFT ≈ 100 ms·scale growing over the run, 16 tokens."""
    rng = random.Random(seed)
    run_id = store.create_run(RunMeta(
        model="smollm2:135m", host="127.0.0.1:11434", label=label, ollama_version="0.23.2",
        load={"concurrency": concurrency, "rate": None, "requests": n, "warmup": 0, "max_tokens": 16},
        sollama_version="0.1.0", system=SYSTEM, sweep_id=sweep_id, sweep_step=step,
        started_at=time.time() - 3600 + seed))
    rows, send = [], 1_000.0
    for idx in range(n + failed):
        if idx >= n:
            rows.append(RequestRecord(idx=idx, send_time=send, ok=False, error_kind="timeout", error="stalled"))
            continue
        ttft = 0.1 * scale * rng.lognormvariate(0, 0.3) * (1 + idx / n)
        gaps = [0.01 * scale * rng.lognormvariate(0, 0.2) for _ in range(gaps_per_request)]
        e2el = ttft + sum(gaps)
        rows.append(RequestRecord(idx=idx, send_time=send, ok=True, ttft=ttft, e2el=e2el, itl=gaps,
                                  output_tokens=gaps_per_request + 1, prompt_tokens=12, load_s=0.001,
                                  prompt_eval_s=0.02, eval_s=sum(gaps) * 0.9, total_s=e2el - 0.005, queue_s=0.005))
        send += e2el / concurrency
    store.add_requests(run_id, rows)
    store.finish_run(run_id, "completed", {"arrival_clock": "kernel", **(summary or {})})
    return run_id


def add_sweep(store: Store, *, slo_e2el: float = 0.45) -> list[int]:
    """Four sweep steps at concurrency 1, 2, 4, 8: throughput grows then flattens, E2EL grows; the stored
    summaries carry the SLO and each step's attainment (the last one misses it)."""
    ids = []
    for i, (c, scale, attainment) in enumerate([(1, 1.0, 1.0), (2, 1.1, 0.99), (4, 1.5, 0.95), (8, 3.0, 0.4)]):
        ids.append(add_run(store, n=40, scale=scale, seed=10 + i, concurrency=c, sweep_id="sweep1", step=i,
                           label="sweep", summary={"slo": {"e2el": slo_e2el}, "slo_attainment": attainment}))
    return ids


def chart_specs(page: str) -> list[dict]:
    """The chart specs a page carries (its JSON data island)."""
    match = re.search(r'<script type="application/json" id="sollama-charts">(.*?)</script>', page, re.S)
    assert match, "no chart data in the page"
    return json.loads(match.group(1))


def drawable(series: dict) -> int:
    """How many of a series' values a chart can draw (non-null)."""
    return sum(v is not None for v in series["y"])


def write_pages(sollama, tmp: Path) -> dict[str, Path]:
    """A run page, a sweep page and a compare page written through the CLI; name → path."""
    with Store() as store:
        base = add_run(store, seed=1, label="main")
        add_run(store, seed=2, scale=1.3, label="pr")
        sweep = add_sweep(store)
    pages = {"run": tmp / "run.html", "sweep": tmp / "sweep.html", "compare": tmp / "compare.html"}
    for args, path in ((["report", str(base)], pages["run"]), (["report", str(sweep[-1])], pages["sweep"]),
                       (["report", "--compare", "label:main", "label:pr"], pages["compare"])):
        result = sollama(*args, "--html", str(path))
        assert result.exit_code == 0, result.output
    return pages
