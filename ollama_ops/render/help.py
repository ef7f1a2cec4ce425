"""`sollama --help`: the root help in Typer's layout, drawn with rich's console, panel and text only.

Typer's own rich help imports `typer.rich_utils`, which imports `rich.markdown` and markdown-it: ~70 ms, as much
as Python, Typer and rich.console together, for a page CI logs and people open all the time (DESIGN: `--help`
within 1.3x of `import typer, rich.console`). Columns are laid out here rather than with `rich.table`, which
alone costs ~4 ms of imports (fractions, decimal). The commands' own `--help` pages keep Typer's renderer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import click
from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

MAX_WIDTH = 100
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z`(])")
_PANEL_CHROME = 4  # border and padding on each side of a panel's content


def first_sentence(help_text: str) -> str:
    """The first sentence of a help text's first paragraph, on one line (a command's line in the root help)."""
    paragraph = " ".join(help_text.strip().split("\n\n")[0].split())
    end = _SENTENCE_END.search(paragraph)
    return paragraph[:end.start() + 1] if end else paragraph


def option_rows(params: Iterable[click.Parameter]) -> list[tuple[str, str, str, str]]:
    """(long names, short names, metavar, help) for each visible option."""
    rows = []
    for param in params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        names = [*param.opts, *param.secondary_opts]
        long = ",".join(n for n in names if n.startswith("--"))
        short = ",".join(n for n in names if not n.startswith("--"))
        metavar = "" if param.is_flag else (param.metavar or param.type.name.upper())
        rows.append((long, short, metavar, param.help or ""))
    return rows


def _columns(console: Console, rows: Sequence[Sequence[str]], styles: Sequence[str], width: int) -> list[Text]:
    """Rows laid out in columns two spaces apart (empty columns take no room); the last column wraps within
    `width`, indented."""
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(len(styles) - 1)]
    indent = sum(w + 2 for w in widths if w)
    lines: list[Text] = []
    for row in rows:
        head = Text()
        for cell, w, style in zip(row, widths, styles, strict=False):
            if w:
                head.append(cell.ljust(w), style=style)
                head.append("  ")
        body = Text(row[-1], style=styles[-1])
        wrapped = body.wrap(console, max(20, width - indent)) if body else [Text()]
        for i, part in enumerate(wrapped):
            lines.append((head if i == 0 else Text(" " * indent)) + part)
    return lines


def _panel(title: str, lines: list[Text]) -> Panel:
    return Panel(Group(*lines), title=Text(title), title_align="left", border_style="dim", box=box.ROUNDED)


def render_root_help(console: Console, *, usage: str, help_text: str, params: Iterable[click.Parameter],
                     commands: Iterable[tuple[str, str]], epilog: str | None) -> None:
    """Usage line, description, an Options panel, a Commands panel (name, one-line summary), the epilog."""
    console.width = min(console.width, MAX_WIDTH)
    inner = console.width - _PANEL_CHROME
    line = Text("Usage: ", style="yellow")
    line.append(usage, style="bold")
    console.print(Padding(line, 1))
    console.print(Padding(Text(help_text), (0, 1, 1, 1)))
    console.print(_panel("Options", _columns(console, option_rows(params),
                                             ("bold cyan", "bold green", "bold yellow", ""), inner)))
    console.print(_panel("Commands", _columns(console, list(commands), ("bold cyan", ""), inner)))
    if epilog:
        console.print(Padding(Text(epilog), 1))
