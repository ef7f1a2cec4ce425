"""Views of installed models, and the progress display of `sollama models import`."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ollama_ops.core.units import format_bytes
from ollama_ops.render.console import display_info, display_success, display_warning
from ollama_ops.services.models import ImportResult, ModelDetails, ModelList, RemoveResult, UnloadResult


def render_model_list(console: Console, data: ModelList) -> None:
    if not data.models:
        display_info(console, "no models installed (add one with `sollama models import FILE.gguf --name NAME`)")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column, justify in (("NAME", "left"), ("SIZE", "right"), ("FAMILY", "left"), ("PARAMS", "right"),
                            ("QUANT", "left"), ("MODIFIED", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for m in data.models:
        table.add_row(Text(m.name), format_bytes(m.size), Text(m.family or "-"), Text(m.parameter_size or "-"),
                      Text(m.quantization or "-"), Text(m.modified_ago or "-"))
    console.print(table)


def _value(value: Any) -> Text:
    if value is None or value == "":
        return Text("-", style="dim")
    if isinstance(value, list):
        return Text(", ".join(str(v) for v in value))
    return Text(str(value))


def render_model_details(console: Console, data: ModelDetails) -> None:
    table = Table(box=None, show_header=False, pad_edge=False, title=Text(data.name, style="bold"),
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [("architecture", data.architecture), ("family", data.family), ("parameters", data.parameter_size),
            ("quantization", data.quantization), ("format", data.format), ("context length", data.context_length),
            ("embedding length", data.embedding_length), ("layers (block_count)", data.block_count),
            ("attention heads", data.head_count), ("KV heads", data.head_count_kv),
            ("capabilities", data.capabilities)]
    for label, value in rows:
        table.add_row(label, _value(value))
    console.print(table)
    if data.parameters:
        console.print(Text("\nParameters", style="bold"))
        for key, value in data.parameters.items():
            for item in value if isinstance(value, list) else [value]:
                console.print(Text(f"  {key:<16} {item}"))
    if data.system:
        console.print(Text("\nSystem", style="bold"))
        console.print(Text(data.system))
    if data.template:
        console.print(Text("\nTemplate", style="bold"))
        console.print(Text(data.template), soft_wrap=True)


def render_import(console: Console, data: ImportResult) -> None:
    how = "uploaded" if data.uploaded else "already on the server, upload skipped"
    display_success(console, f"imported {data.name} from {data.file} ({format_bytes(data.size)}, {data.digest}; "
                             f"{how})")


def render_remove(console: Console, data: RemoveResult) -> None:
    if data.removed:
        display_success(console, f"removed {data.name}")
    else:
        display_warning(console, f"kept {data.name}: nothing removed")


def render_unload(console: Console, data: UnloadResult) -> None:
    if not data.unloaded:
        display_info(console, "no model was loaded")
    for name in data.unloaded:
        display_success(console, f"unloaded {name}")


class ImportProgress:
    """The long steps of an import on stderr: live bars on a terminal, one plain line per step otherwise
    (not a terminal, or NO_COLOR, which also means no live widgets here)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal and not console.is_dumb_terminal and not os.environ.get("NO_COLOR")
        self._progress: Any = None
        self._task: Any = None
        self._label = ""
        self._last_status = ""

    def __enter__(self) -> ImportProgress:
        if self.live:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                      console=self.console, transient=True)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def start(self, label: str, total: int | None) -> None:
        self._label = label
        self._last_status = ""
        if self._progress is not None:
            if self._task is not None:
                self._progress.update(self._task, visible=False)
            self._task = self._progress.add_task(label, total=total)
        else:
            size = f" ({format_bytes(total)})" if total else ""
            display_info(self.console, f"{label}{size}")

    def advance(self, amount: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)

    def status(self, text: str) -> None:
        if text == self._last_status:
            return
        self._last_status = text
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"{self._label}: {text}")
        else:
            display_info(self.console, f"  {text}")
