"""`sollama watch` output: one line per watchdog event on stderr (data-free: stdout stays empty)."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from ollama_ops.edges.events import WatchEvent

_STYLE = {"give-up": "bold red", "restart-failed": "red", "restart": "yellow", "unload": "yellow",
          "probe-failed": "yellow", "backoff": "yellow", "restarted": "green", "recovered": "green"}


def event_line(event: WatchEvent) -> Text:
    line = Text(f"{event.at} ", style="dim")
    line.append(f"watch {event.kind}", style=_STYLE.get(event.kind, "bold"))
    line.append(f" {event.address}: {event.reason}")
    return line


def event_printer(console: Console) -> Callable[[WatchEvent], None]:
    def emit(event: WatchEvent) -> None:
        console.print(event_line(event), soft_wrap=True)

    return emit
