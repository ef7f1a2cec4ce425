"""`sollama bench`: latency and throughput under a controlled load; every run stored in the history."""

from __future__ import annotations

from typing import Annotated

import typer

from ollama_ops.cli.context import JsonOption, use

_LOAD = "Load"
_REQ = "Requests"


def bench(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="Model to benchmark.", show_default=False)],
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", rich_help_panel=_LOAD,
                                                    help="Closed loop: N requests in flight (default: "
                                                         "bench.concurrency).")] = None,
    rate: Annotated[float | None, typer.Option("--rate", "-r", rich_help_panel=_LOAD,
                                               help="Open loop: R requests per second.")] = None,
    arrival: Annotated[str, typer.Option("--arrival", rich_help_panel=_LOAD,
                                         help="Open-loop arrivals: poisson | constant.")] = "poisson",
    max_concurrency: Annotated[int | None, typer.Option("--max-concurrency", rich_help_panel=_LOAD,
                                                        help="Cap on requests in flight (open loop).")] = None,
    requests: Annotated[int | None, typer.Option("--requests", "-n", rich_help_panel=_LOAD,
                                                 help="Measured requests (default: bench.requests).")] = None,
    duration: Annotated[str | None, typer.Option("--duration", "-d", rich_help_panel=_LOAD,
                                                 help="Send for this long instead (30s, 2m).")] = None,
    warmup: Annotated[str | None, typer.Option("--warmup", metavar="N|TIME|P%", rich_help_panel=_LOAD,
                                               help="Warm-up before the measured requests, under the same load: N "
                                                    "requests, a time (5s) or a share of -n/--duration (10%); "
                                                    "excluded from the figures (default: bench.warmup).")] = None,
    cooldown: Annotated[str | None, typer.Option("--cooldown", metavar="N|TIME|P%", rich_help_panel=_LOAD,
                                                 help="Cool-down after them, the load kept up while the measured "
                                                      "requests finish: N, a time or P%; excluded.")] = None,
    seed: Annotated[int, typer.Option("--seed", rich_help_panel=_LOAD,
                                      help="Seed for prompt choice and arrivals.")] = 0,
    sweep: Annotated[bool, typer.Option("--sweep", rich_help_panel=_LOAD,
                                        help="Double the load (1, 2, 4, … or R, 2R, …) until throughput stops "
                                             "growing or the SLO breaks; report the knee.")] = False,
    sweep_max: Annotated[int, typer.Option("--sweep-max", rich_help_panel=_LOAD,
                                           help="Highest concurrency (or rate multiple) of a sweep.")] = 64,
    api: Annotated[str | None, typer.Option("--api", rich_help_panel=_REQ,
                                            help="generate | chat (Ollama's NDJSON) | openai-chat | "
                                                 "openai-completions (OpenAI-compatible SSE, any server).")] = None,
    header: Annotated[list[str] | None, typer.Option("--header", "-H", metavar="NAME:VALUE", rich_help_panel=_REQ,
                                                     help="Extra HTTP header on every request (repeatable; "
                                                          "only the names are stored).")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar=["SOLLAMA_BENCH_API_KEY", "SOLLAMA_API_KEY"],
                                                rich_help_panel=_REQ,
                                                help="Send Authorization: Bearer KEY (never stored or shown).",
                                                show_envvar=True)] = None,
    prompt_tokens: Annotated[str | None, typer.Option("--prompt-tokens", metavar="N[:SD[:MIN:MAX]]",
                                                      rich_help_panel=_REQ,
                                                      help="Synthetic prompts of N tokens by the server's own "
                                                           "count (seeded; normal with SD, clipped).")] = None,
    output_tokens: Annotated[str | None, typer.Option("--output-tokens", metavar="N[:SD[:MIN:MAX]]",
                                                      rich_help_panel=_REQ,
                                                      help="Synthetic output lengths (max_tokens per request).")
                             ] = None,
    prefix_tokens: Annotated[int | None, typer.Option("--prefix-tokens", rich_help_panel=_REQ,
                                                      help="A shared prefix of N tokens before every synthetic "
                                                           "prompt (prefix caching).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", metavar="FILE", rich_help_panel=_REQ,
                                                help="JSONL conversations (prompt or multi-turn messages): turns "
                                                     "in order, conversations in parallel; TTFT per turn.")] = None,
    trace: Annotated[str | None, typer.Option("--trace", metavar="FILE", rich_help_panel=_LOAD,
                                              help="Replay JSONL requests (timestamp + prompt_tokens/"
                                                   "output_tokens or prompt/messages) on their own timeline.")
                     ] = None,
    speed: Annotated[float | None, typer.Option("--speed", rich_help_panel=_LOAD,
                                                help="Time-scale a --trace (2 = twice as fast).")] = None,
    prompts: Annotated[str | None, typer.Option("--prompts", "-p", rich_help_panel=_REQ,
                                                help="short | medium | long, or a file (text lines or JSONL "
                                                     "with prompt/messages).")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", rich_help_panel=_REQ,
                                                   help="num_predict per request.")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", metavar="KEY=VALUE", rich_help_panel=_REQ,
                                                     help="Any Ollama option (repeatable).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", metavar="SECONDS", rich_help_panel=_REQ,
                                                  help="Per-request limit; a stalled request counts as a "
                                                       "timeout.")] = None,
    slo: Annotated[str | None, typer.Option("--slo", help="Objectives for goodput, e.g. "
                                                          "ttft=500ms,tpot=50ms,e2el=5s.")] = None,
    label: Annotated[str | None, typer.Option("--label", "-l", help="Name the run (for report/compare).")] = None,
    max_failures: Annotated[str | None, typer.Option(
        "--max-failures", metavar="N|P%", help="Failed requests the run may have and still exit 0: a count, or a "
        "percentage of the measured requests (default 0: any failure exits 1). A run with no successful request "
        "always exits 1.", show_default=False)] = None,
    report: Annotated[bool, typer.Option("--report", help="Add terminal charts.")] = False,
    html: Annotated[str | None, typer.Option("--html", metavar="FILE",
                                             help="Also write the run (a sweep: all its steps) as one "
                                                  "self-contained HTML page with charts.")] = None,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Benchmark a model: TTFT, TPOT, ITL, E2EL, throughput and goodput; the run is stored for `sollama report`.

    Examples: [bold]sollama bench -m smollm2:135m -c 4 -n 40[/bold] ·
    [bold]sollama bench -m smollm2:135m --rate 2 --duration 30s --slo ttft=500ms[/bold] ·
    [bold]sollama bench -m smollm2:135m --sweep --slo e2el=5s --report[/bold] ·
    [bold]sollama bench -m smollm2:135m -n 40 --html bench.html[/bold] ·
    [bold]sollama bench -m smollm2:135m --api openai-chat --prompt-tokens 512 --output-tokens 64[/bold]

    Exit codes: 0 the run passed · 1 requests failed beyond --max-failures, none succeeded, or the server
    stopped answering mid-run, or too many open files · 2 bad flag · 4 server unreachable at the start · 130
    interrupted (data kept).
    """
    from ollama_ops.render.bench import BenchProgress, live_enabled, render_bench
    from ollama_ops.services.bench.config import build_config
    from ollama_ops.services.bench.result import exit_error
    from ollama_ops.services.bench.run import run_bench

    obj = use(ctx, json=json)
    config = build_config(obj.settings, model=model, concurrency=concurrency, rate=rate, arrival=arrival,
                          max_concurrency=max_concurrency, requests=requests, duration=duration, warmup=warmup,
                          seed=seed, api=api, prompts=prompts, max_tokens=max_tokens, options=option, slo=slo,
                          timeout=timeout, label=label, sweep=sweep, sweep_max=sweep_max, max_failures=max_failures,
                          headers=header, api_key=api_key, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                          prefix_tokens=prefix_tokens, dataset=dataset, trace=trace, speed=speed, cooldown=cooldown)
    if html is not None:
        from ollama_ops.services.html_report import check_target

        check_target(html)
    if live_enabled(obj.err):
        with BenchProgress(obj.err) as live:
            result = run_bench(config, on_progress=live.update)
    else:
        result = run_bench(config)
    obj.emit(result, render_bench)
    if report and not obj.json:
        from ollama_ops.render.charts import bench_charts

        bench_charts(obj.out, result)
    if html is not None:
        from ollama_ops.cli.html_out import write_report
        from ollama_ops.edges.store import Store
        from ollama_ops.services.html_report import run_report

        with Store(config.store_path) as store:
            write_report(obj, run_report(store, result.run_id), html)
    error = exit_error(result)
    if error is not None:
        raise error


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
