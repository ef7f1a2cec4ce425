"""The HTML bench report (`--html FILE`): one self-contained page, charts by the vendored uPlot."""

from ollama_ops.render.html.page import render_page

__all__ = ["render_page"]
