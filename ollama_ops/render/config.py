"""Views of the configuration."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ollama_ops.config import ConfigView


def render_config(console: Console, view: ConfigView) -> None:
    table = Table(title=f"config file: {view.config_file or '(none)'}", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    table.add_column("source")
    for entry in view.entries:
        value = entry.value if isinstance(entry.value, str) else json.dumps(entry.value)
        table.add_row(entry.key, Text(value), Text(entry.source, style="dim" if entry.source == "default" else ""))
    console.print(table)


def render_paths(console: Console, data: dict[str, Any]) -> None:
    for key, value in data.items():
        console.print(Text(f"{key:<14} {value}"))


def render_validation(console: Console, data: dict[str, Any]) -> None:
    console.print(Text(f"ok: {data['file']} is valid"))
