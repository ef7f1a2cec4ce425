"""Consoles and the few display helpers every command uses (status to stderr, data to stdout).

Consoles are built with markup and highlighting off, so model output, paths and server messages are printed
verbatim; styled text is built with `rich.text.Text`, never with markup strings. Every console is a SafeConsole:
the text of everything it renders goes through `render.safe.clean_text`, so no escape sequence from a server or
a model reaches the terminal, whichever renderer printed it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, Any, TextIO

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from ollama_ops.jsonable import to_jsonable
from ollama_ops.render.safe import clean_text, escape_json_text

PIPE_WIDTH = 160  # tables written to a pipe or a CI log are not squeezed to 80 columns


class SafeConsole(Console):
    """A Rich console that drops terminal controls from the text it renders (styles and Rich's own control
    segments, e.g. a live view's cursor moves, are untouched)."""

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and segment.text:
                text = clean_text(segment.text)
                yield segment if text == segment.text else Segment(text, segment.style)
            else:
                yield segment


def make_console(file: TextIO | None = None, *, stderr: bool = False) -> Console:
    no_color = bool(os.environ.get("NO_COLOR"))
    stream = file or (sys.stderr if stderr else sys.stdout)
    try:
        piped = not stream.isatty()
    except (AttributeError, ValueError):
        piped = True
    width = PIPE_WIDTH if piped and not os.environ.get("COLUMNS") else None
    return SafeConsole(file=file, stderr=stderr, markup=False, highlight=False, emoji=False,
                   no_color=no_color, soft_wrap=False, width=width)


def _styled(prefix: str, style: str, message: str) -> Text:
    text = Text(prefix, style=style)
    text.append(message)
    return text


def display_error(console: Console, message: str) -> None:
    console.print(_styled("error: ", "bold red", message), soft_wrap=True)


def display_warning(console: Console, message: str) -> None:
    console.print(_styled("warning: ", "yellow", message), soft_wrap=True)


def display_info(console: Console, message: str) -> None:
    console.print(Text(message), soft_wrap=True)


def display_success(console: Console, message: str) -> None:
    console.print(_styled("✓ ", "green", message), soft_wrap=True)


def print_json(data: Any, file: IO[str] | None = None) -> None:
    """Exactly one JSON document on stdout."""
    import json

    out = file or sys.stdout
    out.write(escape_json_text(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False, sort_keys=False)) + "\n")
    out.flush()
