"""The application object the root callback puts on `ctx.obj` (no globals, no module-level consoles)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from ollama_ops.render.console import make_console, print_json

if TYPE_CHECKING:
    from ollama_ops.client.sync import Client
    from ollama_ops.config import Settings

T = TypeVar("T")


@dataclass
class AppContext:
    """Everything a command needs: settings (loaded on first use), consoles, and the global flags."""

    json: bool = False
    debug: bool = False
    config_path: str | None = None
    host: str | None = None
    api_key: str | None = field(default=None, repr=False)  # a `sollama serve` key (--api-key / SOLLAMA_API_KEY)
    out: Console = field(default_factory=make_console)
    err: Console = field(default_factory=lambda: make_console(stderr=True))
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from ollama_ops.config import load_settings

            self._settings = load_settings(self.config_path, flags={"server.host": self.host})
        return self._settings

    def client(self, *, read_timeout: float | None = None) -> Client:
        """The library's sync client (ollama_ops.Client) on the resolved settings."""
        import os

        from ollama_ops.client.sync import Client

        api_key = self.api_key or os.environ.get("SOLLAMA_API_KEY") or None
        return Client.from_settings(self.settings, read_timeout=read_timeout, api_key=api_key)

    def emit(self, data: T, render: Callable[[Console, T], Any]) -> None:
        """One data object, two views: `--json` prints it as one JSON document, else `render` draws it."""
        if self.json:
            print_json(data)
        else:
            render(self.out, data)


def app_context(ctx: typer.Context) -> AppContext:
    """The AppContext of this invocation (the root callback created it)."""
    obj = ctx.find_object(AppContext)
    if obj is None:  # a sub-app invoked on its own, e.g. in a unit test
        obj = ctx.ensure_object(AppContext)
    return obj


JsonOption = typer.Option("--json", help="Print one JSON document on stdout instead of tables.")


ApiKeyOption = typer.Option("--api-key", metavar="KEY", help="A `sollama serve` API key, when --host is the "
                                                             "gateway (default: SOLLAMA_API_KEY).")


def use(ctx: typer.Context, *, json: bool = False, host: str | None = None, api_key: str | None = None) -> AppContext:
    """The AppContext, with a command-level `--json`, `--host` and `--api-key` folded into the global ones."""
    obj = app_context(ctx)
    obj.json = obj.json or json
    if api_key:
        obj.api_key = api_key
    if host and host != obj.host:
        obj.host, obj._settings = host, None  # settings are resolved again with this address
    return obj
