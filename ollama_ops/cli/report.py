"""`sollama report`: stored bench runs listed, shown, compared (the CI gate), usage summarised, runs exported.

    sollama report                         list the runs (newest 20; --last N, --label, --model)
    sollama report RUN                     one run with charts
    sollama report --compare [BASE [CAND]] compare (selectors: a run id or label:NAME)
    sollama report --usage [--since 7d]    generate/chat usage per model
    sollama report export RUN --csv        per-request rows for spreadsheets

`export` is a real subcommand; every other form is the group's own callback, so `report 3` still means run 3
(`ReportGroup` dispatches to a subcommand only when the first word names one).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from typer.core import TyperGroup

from ollama_ops.cli.context import JsonOption, use

if TYPE_CHECKING:
    from collections.abc import Callable

    from ollama_ops.cli.context import AppContext


class ReportGroup(TyperGroup):
    """A group whose callback takes positional run selectors: a subcommand is chosen only by its exact name in
    the first position; anything else (a run id, options) goes to the callback.

    Only public click API: when the first word names a subcommand, the callback's positional argument is left out
    of the parse (so click's own group parsing hands that word to the subcommand); otherwise options and run ids
    may be interspersed (`report 3 --format md`)."""

    _SUBCOMMAND = "sollama.report.subcommand"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[self._SUBCOMMAND] = bool(args) and args[0] in self.commands
        if not ctx.meta[self._SUBCOMMAND]:
            ctx.allow_interspersed_args = True
        return super().parse_args(ctx, args)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        # Asked for a subcommand's usage line (click passes the child context: "sollama report export RUN", not
        # "sollama report [RUN …] export RUN"), or parsing a subcommand's call: no run selectors.
        if ctx.command is not self or ctx.meta.get(self._SUBCOMMAND):
            return [p for p in params if not isinstance(p, click.Argument)]
        return params


class Format(StrEnum):
    table = "table"
    md = "md"
    json = "json"


app = typer.Typer(cls=ReportGroup, invoke_without_command=True, no_args_is_help=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="report")


def _emit(obj: AppContext, fmt: Format, data: Any, render: Callable[[Any, Any], None],
          markdown: Callable[[Any], str]) -> None:
    if fmt is Format.md and not obj.json:
        obj.out.print(markdown(data), end="", soft_wrap=True)
    else:
        obj.emit(data, render)


@app.callback()
def report(
    ctx: typer.Context,
    selectors: Annotated[list[str] | None, typer.Argument(
        metavar="[RUN | BASE [CANDIDATE]]", help="A run id to show; with --compare, run ids or label:NAME.",
        show_default=False)] = None,
    last: Annotated[int, typer.Option("--last", "-n", help="List the newest N runs (0 = all).")] = 20,
    label: Annotated[str | None, typer.Option("--label", "-l", help="Only runs with this label.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only runs (or usage) of this model.")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Compare BASE with CANDIDATE (default: the latest run "
                                          "vs the previous one with the same model and load).")] = False,
    threshold: Annotated[float | None, typer.Option("--threshold", metavar="PCT",
                                                    help="Percent change that counts [default: "
                                                         "report.threshold]")] = None,
    fail_on_regression: Annotated[bool, typer.Option(
        "--fail-on-regression", help="Exit 6 when a gated metric (report.gated_metrics) regressed; exit 1 when "
        "the comparison cannot decide (a side without a successful request, or too few samples).")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table, md (GitHub job summary) or json.")]
    = Format.table,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Charts when showing one run.")] = True,
    html: Annotated[str | None, typer.Option("--html", metavar="FILE",
                                             help="Also write RUN or the comparison as one self-contained HTML "
                                                  "page with charts (works offline).")] = None,
    usage: Annotated[bool, typer.Option("--usage", help="Summarise generate/chat/gateway usage per model.")] = False,
    by: Annotated[str, typer.Option("--by", metavar="model|key|day",
                                    help="With --usage: group by model, gateway key or UTC day.")] = "model",
    since: Annotated[str | None, typer.Option("--since", metavar="WINDOW",
                                              help="With --usage: only the last WINDOW (7d, 2w, 12h, 30m).")] = None,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """List stored bench runs, show one, compare two (CI gate: --fail-on-regression exits 6), or summarise usage.

    The gate fails closed: with --fail-on-regression, a regression exits 6, and a comparison that cannot decide
    (a side with no successful request, a gated metric with too few samples) exits 1, naming the side and why.

    RUN and BASE/CANDIDATE: a run id, or label:NAME (every finished run with that label, pooled). Default
    comparison: the latest run vs the previous one with the same model and load settings.

    Examples: [bold]sollama report 3[/bold] ·
    [bold]sollama report --compare --format md >> "$GITHUB_STEP_SUMMARY"[/bold] ·
    [bold]sollama report --compare label:main label:pr --fail-on-regression[/bold] ·
    [bold]sollama report --usage --since 7d[/bold] · [bold]sollama report export 3 --csv -o run3.csv[/bold] ·
    [bold]sollama report 3 --html run3.html[/bold]
    """
    if ctx.invoked_subcommand is not None:
        return
    from ollama_ops.edges.store import Store
    from ollama_ops.errors import UsageError

    obj = use(ctx, json=json or fmt is Format.json)
    args = list(selectors or [])
    if html is not None and (usage or not (compare or args)):
        raise UsageError("--html needs a run to show or --compare")
    if usage:
        if compare or args:
            raise UsageError("--usage takes no run selectors and no --compare")
        with Store() as store:
            source: Any = store
            if obj.settings.gateway.store:  # the gateway replicas' usage lives in PostgreSQL
                from ollama_ops.fleet.pgstore import WithGatewayUsage

                source = WithGatewayUsage(store, obj.settings.gateway.store)
            _usage(obj, source, fmt, since=since, model=model, by=by)
    elif compare:
        if len(args) > 2:
            raise UsageError("--compare takes at most BASE and CANDIDATE")
        with Store() as store:
            _compare(obj, store, fmt, args, threshold=threshold, fail=fail_on_regression, label=label, model=model,
                     html=html)
    elif len(args) > 1:
        raise UsageError("give one run to show, or --compare BASE CANDIDATE")
    elif args:
        with Store() as store:
            _show(obj, store, fmt, _run_id(args[0]), charts=charts, html=html)
    else:
        from ollama_ops.render.report import render_run_list, run_list_markdown
        from ollama_ops.services.report import list_runs

        with Store() as store:
            data = list_runs(store, last=last or None, label=label, model=model)
        _emit(obj, fmt, data, render_run_list, run_list_markdown)


def _run_id(text: str) -> int:
    from ollama_ops.errors import UsageError
    from ollama_ops.services.report import parse_run_id

    run_id = parse_run_id(text)
    if run_id is None:
        raise UsageError(f"'{text}' is not a run id", hint="see `sollama report` for the ids")
    return run_id


def _show(obj: AppContext, store: Any, fmt: Format, run_id: int, *, charts: bool, html: str | None) -> None:
    from ollama_ops.render.report import render_run_detail, run_detail_markdown
    from ollama_ops.services.report import show_run

    data = show_run(store, run_id)
    _emit(obj, fmt, data, render_run_detail, run_detail_markdown)
    if charts and fmt is Format.table and not obj.json:
        from ollama_ops.render.charts import run_charts

        run_charts(obj.out, data)
    if html is not None:
        from ollama_ops.cli.html_out import write_report
        from ollama_ops.services.html_report import run_report

        write_report(obj, run_report(store, run_id), html)


def _compare(obj: AppContext, store: Any, fmt: Format, args: list[str], *, threshold: float | None, fail: bool,
             label: str | None, model: str | None, html: str | None) -> None:
    from ollama_ops.render.report import comparison_markdown, render_comparison
    from ollama_ops.services.compare import compare, gate_error

    settings = obj.settings.report
    data = compare(store, *args, threshold_pct=settings.threshold if threshold is None else threshold,
                   gated_metrics=settings.gated_metrics, label=label, model=model)
    _emit(obj, fmt, data, render_comparison, comparison_markdown)
    if html is not None:
        from ollama_ops.cli.html_out import write_report
        from ollama_ops.services.html_report import compare_report

        write_report(obj, compare_report(data), html)
    error = gate_error(data) if fail else None
    if error is not None:
        raise error


def _usage(obj: AppContext, store: Any, fmt: Format, *, since: str | None, model: str | None,
           by: str = "model") -> None:
    from ollama_ops.errors import UsageError
    from ollama_ops.render.report import render_usage, usage_markdown
    from ollama_ops.services.report import USAGE_GROUPS, since_epoch, usage_summary

    if by not in USAGE_GROUPS:
        raise UsageError(f"--by must be one of {', '.join(USAGE_GROUPS)}, got {by!r:.40}")
    _emit(obj, fmt, usage_summary(store, since=since_epoch(since), model=model, by=by), render_usage, usage_markdown)


@app.command("export")
def export(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="The run id.")],
    csv: Annotated[bool, typer.Option("--csv", help="CSV, one row per request (the only format so far).")] = True,
    output: Annotated[str | None, typer.Option("--output", "-o", metavar="FILE",
                                               help="Write to FILE instead of stdout.")] = None,
) -> None:
    """Per-request rows of one run as CSV (warm-up rows included, flagged), for spreadsheets.

    Example: [bold]sollama report export 3 --csv -o run3.csv[/bold]
    """
    from ollama_ops.edges.store import Store
    from ollama_ops.render.console import display_success
    from ollama_ops.services.report import export_csv

    obj = use(ctx)
    with Store() as store:
        result, text = export_csv(store, _run_id(run), output)
    if output is None:
        from ollama_ops.render.safe import clean_text

        obj.out.file.write(clean_text(text) if obj.out.is_terminal else text)  # a pipe gets the exact bytes
        obj.out.file.flush()
    else:
        display_success(obj.err, f"wrote {result.rows} request rows of run {result.run_id} to {output}")
