"""`--html FILE` on `report` and `bench`: render the HTML report and write it (the one hook both commands share)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ollama_ops.cli.context import AppContext
    from ollama_ops.services.html_report import HtmlReport


def write_report(obj: AppContext, report: HtmlReport, path: str) -> None:
    """Write `report` to `path` as one self-contained page and say so on stderr."""
    from ollama_ops.render.console import display_success
    from ollama_ops.render.html import render_page
    from ollama_ops.services.html_report import write_html

    written = write_html(render_page(report), path, len(report.charts))
    display_success(obj.err, f"wrote the HTML report to {written.path} ({written.bytes / 1024:.0f} KiB, "
                             f"{written.charts} chart{'s' if written.charts != 1 else ''})")
