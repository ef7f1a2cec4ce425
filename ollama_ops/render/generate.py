"""Views of a generation and of the chat REPL's replies: the `--verbose` stats block (as `ollama run
--verbose` prints it), the `--json` document, `/show` and `/help`. Model text is never read as markup."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from ollama_ops.core.units import format_seconds

if TYPE_CHECKING:
    from ollama_ops.services.chat import ShowView
    from ollama_ops.services.generate import GenerationReport


def _rate(value: float) -> str:
    return f"{value:.2f} tokens/s" if value > 0 else "-"


def stats_lines(report: GenerationReport) -> list[tuple[str, str]]:
    t = report.timings
    return [
        ("total duration", format_seconds(t.total)),
        ("load duration", format_seconds(t.load)),
        ("prompt eval count", f"{t.prompt_eval_count} token(s)"),
        ("prompt eval duration", format_seconds(t.prompt_eval)),
        ("prompt eval rate", _rate(t.prompt_eval_rate)),
        ("eval count", f"{t.eval_count} token(s)"),
        ("eval duration", format_seconds(t.eval)),
        ("eval rate", _rate(t.eval_rate)),
        ("time to first token", format_seconds(report.ttft_s)),
    ]


def render_stats(console: Console, report: GenerationReport) -> None:
    """The timings block, one `name: value` line each (goes to stderr: stdout carries only the answer)."""
    for name, value in stats_lines(report):
        console.print(Text(f"{name + ':':<22}{value}"), soft_wrap=True)


def generate_document(report: GenerationReport) -> dict[str, Any]:
    """The `--json` document: the text, why it stopped, and the server's timings (seconds and tokens)."""
    t = report.timings
    return {
        "model": report.model,
        "text": report.text,
        "done_reason": report.done_reason,
        "ttft_s": report.ttft_s,
        "wall_s": report.wall_s,
        "timings": {
            "total_s": t.total, "load_s": t.load, "prompt_eval_s": t.prompt_eval, "eval_s": t.eval,
            "prompt_eval_count": t.prompt_eval_count, "eval_count": t.eval_count,
            "prompt_eval_rate": t.prompt_eval_rate, "eval_rate": t.eval_rate,
        },
    }


def render_generate_json(console: Console, report: GenerationReport) -> None:
    from ollama_ops.render.console import print_json

    print_json(generate_document(report), file=console.file)


def render_markdown(console: Console, text: str) -> None:
    """A finished answer as Markdown (`--markdown`); Markdown is parsed, Rich markup is not."""
    from rich.markdown import Markdown

    console.print(Markdown(text))


def render_help(console: Console, text: str) -> None:
    console.print(Text(text), soft_wrap=True)


def render_show(console: Console, view: ShowView) -> None:
    d = view.details
    rows = [
        ("model", d.name), ("architecture", d.architecture), ("parameters", d.parameter_size),
        ("quantization", d.quantization), ("context length", "" if d.context_length is None else str(d.context_length)),
        ("capabilities", ", ".join(d.capabilities)),
    ]
    rows += [(f"model parameter {k}", v) for k, v in d.parameters.items()]
    rows += [(f"option {k}", json.dumps(v)) for k, v in sorted(view.options.items())]
    rows += [("system", view.system or "(model default)"), ("transcript", view.transcript),
             ("messages", str(view.messages))]
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        console.print(Text(f"{name:<{width}}{value}"), soft_wrap=True)
