"""View of `sollama memory`: the budget, each model's footprint, and the recommended OLLAMA_* settings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ollama_ops.core.units import format_bytes
from ollama_ops.services.memory import MemoryPlan


def _yes_no(ok: bool) -> Text:
    return Text("yes", style="green") if ok else Text("no", style="red")


def render_memory(console: Console, plan: MemoryPlan) -> None:
    b = plan.budget
    line = Text("budget ", style="bold")
    line.append(f"{format_bytes(b.total)} = RAM {format_bytes(b.total_ram)} − reserve {format_bytes(b.reserve)} "
                f"({b.reserve_spec})")
    if b.gpus:
        line.append(f" + VRAM {format_bytes(b.vram)} on {b.gpus} GPU{'s' if b.gpus > 1 else ''}")
    console.print(line)
    console.print(Text(f"at num_ctx {plan.num_ctx}, {plan.parallel} parallel slot{'s' if plan.parallel > 1 else ''}, "
                       f"{plan.kv_cache_type} KV cache"))
    if plan.models:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("MODEL", "ARCH", "WEIGHTS", "KV CACHE", "GRAPH", "OLLAMA SIZE", "NEEDS", "FITS"):
            table.add_column(column, justify="left" if column in ("MODEL", "ARCH", "FITS") else "right")
        for m in plan.models:
            table.add_row(Text(m.name), Text(m.architecture), format_bytes(m.weights), format_bytes(m.kv_cache),
                          format_bytes(m.graph), format_bytes(m.ollama_size), format_bytes(m.footprint),
                          _yes_no(m.fits_alone))
        console.print(table)
        for m in plan.models:
            for note in m.notes:
                console.print(Text(f"  {m.name}: {note}", style="dim"))
        together = Text("together ")
        together.append(f"{format_bytes(plan.together)}: ")
        together.append_text(_yes_no(plan.fits_together))
        if not plan.fits_together:
            together.append(f" (at most {plan.max_together} of the largest at once)")
        console.print(together)
    else:
        console.print(Text("no models to measure: recommendations from RAM only", style="dim"))
    for skipped in plan.skipped:
        console.print(Text(f"skipped {skipped}", style="yellow"))
    console.print(Text("\nrecommended", style="bold"))
    for rec in plan.recommendations:
        row = Text(f"  {rec.var}={rec.value}")
        row.append(f"  # {rec.reason}" + (" (pinned by the config)" if rec.pinned else ""), style="dim")
        console.print(row, soft_wrap=True)
    if plan.saved_to:
        console.print(Text(f"\nplan saved to {plan.saved_to} (`sollama start` applies it)", style="dim"),
                      soft_wrap=True)
    else:
        console.print(Text("\nnot saved: `sollama start` keeps its plan (pass --save to store this one)",
                           style="dim"), soft_wrap=True)
