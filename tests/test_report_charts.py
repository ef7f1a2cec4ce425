"""The terminal charts: colour only on a colour terminal, width from the console, sweep charts."""

from __future__ import annotations

import io
import json
import random

import pytest
from rich.console import Console

from ollama_ops.edges.store import RunMeta, Store
from ollama_ops.render.charts import bench_charts, run_charts
from ollama_ops.services.report import show_run
from tests.test_report import LOAD, add_run


def _console(*, color: bool, width: int = 100) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    if color:
        return Console(file=buffer, width=width, force_terminal=True, color_system="256", markup=False), buffer
    return Console(file=buffer, width=width, no_color=True, markup=False), buffer


@pytest.fixture
def detail():
    with Store() as store:
        run_id = add_run(store, n=60, seed=1)
        return show_run(store, run_id)


@pytest.mark.parametrize("width", [60, 100])
def test_colourless_charts_fit_the_console_width(detail, width):
    console, buffer = _console(color=False, width=width)
    run_charts(console, detail)
    text = buffer.getvalue()
    assert "\x1b[" not in text
    assert "TTFT (ms)" in text and "E2EL (ms)" in text and "Latency over time" in text
    assert max(len(line) for line in text.splitlines()) <= width


def test_a_colour_terminal_gets_colour(detail, monkeypatch):
    monkeypatch.delenv("NO_COLOR")
    console, buffer = _console(color=True)
    run_charts(console, detail)
    assert "\x1b[" in buffer.getvalue()


def test_too_few_samples_say_so():
    with Store() as store:
        run_id = add_run(store, n=1, seed=1)
        data = show_run(store, run_id)
    console, buffer = _console(color=False)
    run_charts(console, data)
    assert "too few successful requests" in buffer.getvalue()


def test_sweep_runs_chart_throughput_vs_load():
    with Store() as store:
        ids = []
        for step, concurrency in enumerate((1, 2, 4)):
            run_id = store.create_run(RunMeta(model="m", load={**LOAD, "concurrency": concurrency},
                                              sweep_id="sw1", sweep_step=step))
            store.finish_run(run_id, "completed", None)
            ids.append(run_id)
        # give each step samples through the public API
        for run_id, scale in zip(ids, (1.0, 0.6, 0.5), strict=True):
            _copy_requests(store, add_run(store, n=20, scale=scale, seed=run_id), run_id)
        data = show_run(store, ids[-1])
    assert [p.load_value for p in data.sweep] == [1.0, 2.0, 4.0]
    console, buffer = _console(color=False)
    run_charts(console, data)
    assert "Throughput vs load: output tok/s by concurrency" in buffer.getvalue()


def _copy_requests(store: Store, source: int, target: int) -> None:
    store.add_requests(target, store.requests(source, include_warmup=True))


def test_sweep_json_of_report_run(sollama):
    with Store() as store:
        run_id = store.create_run(RunMeta(model="m", load=LOAD, sweep_id="x", sweep_step=0))
        _copy_requests(store, add_run(store, n=10), run_id)
        store.finish_run(run_id, "completed", None)
    doc = json.loads(sollama("report", str(run_id), "--json").stdout)
    assert [p["run_id"] for p in doc["sweep"]] == [run_id]


def test_bench_charts_draw_a_bench_result():
    from ollama_ops.core.bench.metrics import MetricsAccumulator
    from ollama_ops.core.bench.sweep import SweepResult, SweepStep
    from ollama_ops.services.bench.result import BenchResult, BenchSeries

    rng = random.Random(0)
    send = [i * 0.2 for i in range(40)]
    ttft = [0.1 * rng.lognormvariate(0, 0.2) for _ in send]
    e2el = [t + 0.15 for t in ttft]
    steps = [SweepStep(step=i, concurrency=c, rate=None, run_id=i + 1, status="completed", request_throughput=c,
                       output_throughput=40.0 * c ** 0.5, ttft_p50=0.1, e2el_p50=0.2, slo_attainment=None,
                       meets_slo=True, gain_pct=None) for i, c in enumerate((1, 2, 4))]
    result = BenchResult(run_id=3, status="completed", model="m", host="h", api="generate", label=None,
                         ollama_version=None, model_digest=None, load=LOAD,
                         summary=MetricsAccumulator().summary(1.0),
                         sweep=SweepResult(sweep_id="s", steps=steps, knee=steps[-1], stop_reason="done"),
                         series=BenchSeries(send_s=send, ttft_s=ttft, e2el_s=e2el))
    console, buffer = _console(color=False)
    bench_charts(console, result)
    text = buffer.getvalue()
    assert "TTFT (ms)" in text and "Latency over time" in text
    assert "Throughput vs load: output tok/s by concurrency" in text
