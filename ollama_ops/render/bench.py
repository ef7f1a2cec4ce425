"""Rich views of `sollama bench`: the summary tables and the live progress line (stderr, terminals only)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ollama_ops.core.bench.load import describe_load
from ollama_ops.core.bench.phases import PHASE_LABELS
from ollama_ops.core.units import format_seconds
from ollama_ops.render.console import display_warning


def _ms(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value * 1000:.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value * 100:.1f}%"


def render_bench(console: Console, result: Any) -> None:
    """The run's figures: throughput, latency distributions (ms), server breakdown, SLO, sweep steps."""
    s = result.summary
    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    rows = [
        ("run", f"#{result.run_id} ({result.status})" + (f" label {result.label}" if result.label else "")),
        ("model", f"{result.model} @ {result.host}" + (f" (Ollama {result.ollama_version})"
                                                        if result.ollama_version else "")),
        ("load", f"{describe_load(result.load)}, warm-up {result.load.get('warmup', 0)}"
                 + (f", cool-down {result.load['cooldown']}" if result.load.get("cooldown") else "")
                 + f", api {result.api}"),
        ("requests", f"{s.requests_ok} ok, {s.requests_failed} failed" + (
            " (" + ", ".join(f"{k} ×{n}" for k, n in s.errors.items()) + ")" if s.errors else "")),
        ("duration", format_seconds(s.duration_s)),
        ("throughput", f"{s.request_throughput:.2f} req/s · {s.output_throughput:.1f} output tok/s · "
                       f"{s.total_token_throughput:.1f} total tok/s"),
        ("tokens", f"{s.output_tokens} output ({s.output_tokens_source}), {s.prompt_tokens} prompt"),
        ("clock", "chunk arrivals: " + ("kernel receive timestamps" if result.arrival_clock == "kernel"
                                        else f"event loop read time ({result.arrival_clock})")),
    ]
    syn = result.synthetic
    if syn is not None:
        rows.append(("synthetic", f"prompt {syn.prompt_tokens} tokens (+ prefix {syn.prefix_tokens})"
                                  + (f", output {syn.output_tokens}" if syn.output_tokens else "")
                                  + f"; {syn.prompts} prompts, server adds {syn.overhead_tokens:g} tokens, "
                                  f"{syn.tokens_per_word:g} tok/word, {syn.probes} probes"
                                  + ("" if syn.exact else " (corrected one by one)")))
    lengths = result.lengths
    if lengths is not None:
        for label, asked, got in (("prompt len", lengths.prompt_requested, lengths.prompt_achieved),
                                  ("output len", lengths.output_requested, lengths.output_achieved)):
            if asked is not None and got is not None:
                rows.append((label, f"requested mean {asked.mean:.1f} (p50 {asked.p50:g}, max {asked.max:g}) · "
                                    f"achieved mean {got.mean:.1f} (p50 {got.p50:g}, min {got.min:g}, "
                                    f"max {got.max:g}) by the server's count"))
    if any(p.excluded for p in result.phases):
        rows.append(("phases", " · ".join(
            f"{PHASE_LABELS[p.phase]} {p.requests} sent {p.first_send_s:.2f}–{p.last_send_s:.2f} s"
            + (" (excluded)" if p.excluded else "") for p in result.phases)))
    lag = result.send_lag
    if lag is not None:
        rows.append(("send lag", f"socket write − scheduled send: p50 {_ms(lag.p50)} ms, p99 {_ms(lag.p99)} ms, "
                                 f"max {_ms(lag.max)} ms"))
    if s.slo:
        slo = ", ".join(f"{k}≤{format_seconds(v)}" for k, v in s.slo.items())
        rows.append(("SLO", f"{slo}: attainment {_pct(s.slo_attainment)}, goodput {s.goodput or 0:.2f} req/s"))
    for key, value in rows:
        head.add_row(Text(key), Text(value))
    console.print(head)

    table = Table(title="latency (ms)", title_justify="left")
    table.add_column("metric")
    for col in ("n", "mean", "p50", "p90", "p95", "p99", "max"):
        table.add_column(col, justify="right")
    for name in ("ttft", "tpot", "itl", "e2el", "gateway_queue"):
        d = getattr(s, name)
        label = "GATEWAY QUEUE" if name == "gateway_queue" else name.upper()
        if d is None:
            if name != "gateway_queue":
                table.add_row(label, "0", *["-"] * 6)
            continue
        table.add_row(label, str(d.n), _ms(d.mean), _ms(d.p50), _ms(d.p90), _ms(d.p95), _ms(d.p99), _ms(d.max))
    console.print(table)
    if result.gateway_queue_absent:
        console.print(Text(f"gateway queue wait: {result.gateway_queue_absent}", style="dim"))

    if result.turns:
        turns = Table(title="TTFT by conversation turn (ms)", title_justify="left")
        for col in ("turn", "n", "p50", "p90"):
            turns.add_column(col, justify="right")
        for t in result.turns:
            turns.add_row(str(t.turn), str(t.n), _ms(t.ttft_p50), _ms(t.ttft_p90))
        console.print(turns)

    b = s.breakdown
    if b is not None:
        parts = Table(title="server breakdown (median per request)", title_justify="left")
        for col in ("part", "ms", "share of E2EL"):
            parts.add_column(col, justify="left" if col == "part" else "right")
        for label, sec, share in b.rows():
            parts.add_row(label, _ms(sec), _pct(share))
        console.print(parts)
    elif result.breakdown_absent:
        console.print(Text(f"server breakdown: {result.breakdown_absent}"))

    if result.sweep is not None:
        render_sweep(console, result.sweep)
    for warning in result.warnings:
        display_warning(console, warning)


def render_sweep(console: Console, sweep: Any) -> None:
    table = Table(title=f"sweep {sweep.sweep_id}: {sweep.stop_reason}", title_justify="left")
    for col in ("step", "load", "run", "req/s", "out tok/s", "gain", "TTFT p50", "E2EL p50", "SLO", "knee"):
        table.add_column(col, justify="right")
    for st in sweep.steps:
        load = f"rate {st.rate:g}/s" if st.rate else f"c={st.concurrency}"
        knee = "◀" if sweep.knee is not None and st.run_id == sweep.knee.run_id else ""
        table.add_row(str(st.step + 1), load, f"#{st.run_id}", f"{st.request_throughput:.2f}",
                      f"{st.output_throughput:.1f}", "-" if st.gain_pct is None else f"{st.gain_pct:+.0f}%",
                      _ms(st.ttft_p50), _ms(st.e2el_p50),
                      "-" if st.slo_attainment is None else _pct(st.slo_attainment), knee)
    console.print(table)
    if sweep.knee is not None:
        k = sweep.knee
        where = f"rate {k.rate:g}/s" if k.rate else f"concurrency {k.concurrency}"
        console.print(Text(f"knee: {where} ({k.output_throughput:.1f} output tok/s, run #{k.run_id})"))
    else:
        console.print(Text("knee: none (no load met the SLO)"))


class BenchProgress:
    """A one-line live view on stderr; `update` is the bench service's progress callback."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.console = console
        self.live = Live(Text(""), console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> BenchProgress:
        self.live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.live.__exit__(exc_type, exc, tb)

    def update(self, p: Any) -> None:
        done = f"{p.done}/{p.total}" if p.total else str(p.done)
        timing = f"{p.elapsed_s:.1f}s" + (f"/{p.duration_s:g}s" if p.duration_s else "")
        text = Text(f"{p.step}{p.phase}: {done} done, {p.failed} failed, {p.in_flight} in flight, {timing}")
        self.live.update(text)


def live_enabled(console: Console) -> bool:
    """Live widgets only on a real terminal without NO_COLOR."""
    import os

    return console.is_terminal and not os.environ.get("NO_COLOR") and not console.is_dumb_terminal
