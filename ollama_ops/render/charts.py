"""Terminal charts (plotext): TTFT and E2EL histograms, latency over time, throughput vs load for sweeps.

plotext (~200 ms to import) is imported only here, inside the functions. Charts are text on stdout: colourless
(plotext's "colorless" theme and uncoloured strings) when NO_COLOR is set or stdout is not a terminal; the width
follows the console. Written for plotext 6 (`plotext.figure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from ollama_ops.render.console import display_info

HEIGHT = 14
BINS = 20


def _colorless(console: Console) -> bool:
    return bool(console.no_color or not console.is_terminal or console.color_system is None)


def _figure(console: Console, title: str, xlabel: str, ylabel: str) -> Any:
    import plotext

    fig = plotext.figure
    fig.clear()
    fig.theme("colorless" if _colorless(console) else "dark")
    fig.plot_size(max(40, console.width), HEIGHT)
    fig.title(title)
    fig.label(xlabel, "x")
    fig.label(ylabel, "y")
    return fig


def _emit(console: Console, fig: Any) -> None:
    colorless = _colorless(console)
    text = fig.build().string(colorless=colorless)
    console.print(Text(text) if colorless else Text.from_ansi(text), soft_wrap=True, crop=False)
    console.print()


def histogram(console: Console, title: str, values: Sequence[float], xlabel: str) -> None:
    """A histogram of `values`; nothing when there are fewer than two."""
    if len(values) < 2:
        return
    fig = _figure(console, title, xlabel, "requests")
    fig.draw(fig.hist(list(values), bins=min(BINS, max(5, len(values) // 2))))
    _emit(console, fig)


def scatter(console: Console, title: str, xs: Sequence[float], ys: Sequence[float], xlabel: str, ylabel: str,
            *, lines: bool = False) -> None:
    """Points (x, y); joined by lines when `lines`. Nothing when there are fewer than two."""
    if len(xs) < 2:
        return
    fig = _figure(console, title, xlabel, ylabel)
    signal = fig.signal(list(xs), list(ys))
    if lines:
        signal.lines()
    fig.draw(signal)
    _emit(console, fig)


def _ms(values: Sequence[float | None]) -> list[float]:
    return [v * 1000.0 for v in values if v is not None]


# Markers of the requests a run excluded from its figures, on the latency-over-time chart.
PHASE_MARKERS = {"warmup": "w", "cooldown": "c"}


def latency_charts(console: Console, ttft: Sequence[float], e2el: Sequence[float],
                   send_offsets: Sequence[float], send_e2el: Sequence[float],
                   excluded: Sequence[tuple[str, float, float]] = ()) -> None:
    """TTFT and E2EL histograms (ms), and E2EL by send time (latency over time), where the warm-up and cool-down
    requests (`excluded`: phase, send offset, E2EL seconds) are marked w and c."""
    if len(ttft) < 2 and len(e2el) < 2:
        display_info(console, "too few successful requests for charts")
        return
    histogram(console, "TTFT (ms)", _ms(ttft), "TTFT ms")
    histogram(console, "E2EL (ms)", _ms(e2el), "E2EL ms")
    if len(send_offsets) < 2:
        return
    shown = [p for p in PHASE_MARKERS if any(phase == p for phase, _, _ in excluded)]
    fig = _figure(console, "Latency over time: E2EL (ms) by send time", "send time (s since start)", "E2EL ms")
    fig.draw(fig.signal(list(send_offsets), _ms(send_e2el)))
    for phase in shown:
        points = [(x, y) for p, x, y in excluded if p == phase]
        fig.draw(fig.signal([x for x, _ in points], _ms([y for _, y in points]), marker=PHASE_MARKERS[phase]))
    _emit(console, fig)
    if shown:
        marks = ", ".join(f"{PHASE_MARKERS[p]} = {'warm-up' if p == 'warmup' else 'cool-down'}" for p in shown)
        console.print(Text(f"{marks}: sent, stored, and excluded from every figure"))
        console.print()


def load_chart(console: Console, loads: Sequence[float], throughput: Sequence[float], load_name: str) -> None:
    """Output tok/s against load (concurrency or request rate) for the steps of a sweep."""
    scatter(console, f"Throughput vs load: output tok/s by {load_name}", loads, throughput, load_name,
            "output tok/s", lines=True)


def run_charts(console: Console, run_detail: Any) -> None:
    """Charts of a stored run (`services.report.RunDetail`), for `sollama report RUN`."""
    ok = [s for s in run_detail.samples if s.ok and s.e2el is not None and s.phase == "run"]
    excluded = [(s.phase, s.offset_s, s.e2el) for s in run_detail.samples
                if s.ok and s.e2el is not None and s.phase != "run"]
    latency_charts(console, [s.ttft for s in ok if s.ttft is not None], [s.e2el for s in ok],
                   [s.offset_s for s in ok], [s.e2el for s in ok], excluded)
    points = [p for p in run_detail.sweep if p.output_throughput is not None]
    if len(points) > 1:
        name = "request rate (req/s)" if run_detail.run.load.get("rate") else "concurrency"
        load_chart(console, [p.load_value for p in points], [p.output_throughput for p in points], name)


def bench_charts(console: Console, bench_result: Any) -> None:
    """Charts of a fresh run (`services.bench.result.BenchResult`), for `sollama bench --report`: its latency charts
    and, for a sweep, throughput vs load over the steps."""
    series = bench_result.series
    latency_charts(console, series.ttft_s, series.e2el_s, series.send_s, series.e2el_s, series.excluded)
    sweep = bench_result.sweep
    if sweep is not None and len(sweep.steps) > 1:
        by_rate = sweep.steps[0].rate is not None
        loads = [float(s.rate if by_rate else s.concurrency or 0) for s in sweep.steps]
        load_chart(console, loads, [s.output_throughput for s in sweep.steps],
                   "request rate (req/s)" if by_rate else "concurrency")
