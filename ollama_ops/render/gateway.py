"""Views of the gateway's data: the serving banner, created keys (the secret, once) and the key list."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ollama_ops.core.gateway.keys import KeyRecord


@dataclass
class KeyView:
    name: str
    hint: str
    models: list[str]
    rpm: int | None
    tpm: int | None
    concurrency: int | None
    daily_tokens: int | None
    priority: int
    admin: bool
    created: str
    expires: str | None
    state: str  # active | revoked | expired


@dataclass
class KeyListing:
    keys: list[KeyView] = field(default_factory=list)

    @classmethod
    def of(cls, records: list[KeyRecord], now: float | None = None) -> KeyListing:
        now = time.time() if now is None else now
        return cls([_view(r, now) for r in records])


@dataclass
class CreatedView:
    """A new or rotated key: its secret (shown this once) and its settings."""

    secret: str
    key: KeyView

    @classmethod
    def of(cls, created) -> CreatedView:  # type: ignore[no-untyped-def]
        return cls(created.secret, _view(created.record, time.time()))


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _view(r: KeyRecord, now: float) -> KeyView:
    state = "revoked" if r.revoked is not None else "expired" if r.expires is not None and now >= r.expires \
        else "active"
    return KeyView(r.name, r.hint, list(r.models), r.rpm, r.tpm, r.concurrency, r.daily_tokens, r.priority, r.admin,
                   _iso(r.created) or "", _iso(r.expires), state)


def render_serving(console: Console, config, keys: int, *, workers: int = 1) -> None:  # type: ignore[no-untyped-def]
    auth = "off" if config.auth == "off" else f"{keys} key(s)" if keys or config.auth == "required" else \
        "off until a key exists (loopback)"
    target = config.upstream
    if getattr(config, "upstreams", None):
        target = ", ".join(f"{url} ({slots} slot{'s' if slots != 1 else ''})" for url, slots in config.upstreams)
    console.print(Text.assemble(("✓ ", "green"), f"sollama gateway on {config.listen_url} → {target}"))
    if getattr(config, "state", None) or getattr(config, "store", None):
        from ollama_ops.fleet.admin import redact

        console.print(Text(f"  state {redact(config.state) or 'in-process'} · store "
                           f"{redact(config.store) or 'keys file + SQLite'}"))
    console.print(Text(f"  slots {config.slots} · queue {config.queue_depth} · max wait {config.max_wait:g} s · "
                       f"auth {auth}" + (f" · {workers} workers" if workers > 1 else "")))


def render_created(console: Console, created: CreatedView) -> None:
    """The secret alone on stdout (so `$(sollama keys create x)` captures it); the rest is for the JSON view."""
    console.print(Text(created.secret))


def render_revoked(console: Console, record: KeyRecord) -> None:
    console.print(Text(f"revoked {record.name}"))


def render_key_list(console: Console, listing: KeyListing) -> None:
    if not listing.keys:
        console.print(Text("no keys (create one with `sollama keys create NAME`)"))
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "SECRET", "MODELS", "RPM", "TPM", "CONC", "DAILY", "PRIO", "ADMIN", "EXPIRES", "STATE"):
        table.add_column(col)
    for k in listing.keys:
        dash = "-"
        table.add_row(k.name, f"…{k.hint}", ",".join(k.models) or "*", str(k.rpm or dash), str(k.tpm or dash),
                      str(k.concurrency or dash), str(k.daily_tokens or dash), str(k.priority),
                      "yes" if k.admin else "no", k.expires or "never", k.state)
    console.print(table)
