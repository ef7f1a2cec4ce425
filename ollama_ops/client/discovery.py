"""Where a library client connects: the first source that is set wins.

1. arguments (`Client("10.0.0.5:11434")`, `api_key=`);
2. `SOLLAMA_URL` (+ `SOLLAMA_API_KEY`): the sollama gateway;
3. the sollama config file's `server.host` (`SOLLAMA_CONFIG`, else the user config dir);
4. `OLLAMA_HOST` (Ollama's own rules);
5. `127.0.0.1:11434`.

`Discovery.source` names the winner, so `client.describe()` can say why a client talks to where it talks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ollama_ops.core.hosts import parse_host
from ollama_ops.errors import ConfigError, UsageError

DEFAULT_HOST = "127.0.0.1:11434"


@dataclass(frozen=True)
class Discovery:
    """The address a client uses and where it came from ("argument", "SOLLAMA_URL", "config:<path>",
    "OLLAMA_HOST" or "default"). `gateway` is true when the address is a sollama gateway (SOLLAMA_URL, or an
    argument given with an api key)."""

    base_url: str
    source: str
    gateway: bool = False
    api_key: str | None = field(default=None, repr=False)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)


def _base_url(value: str, origin: str) -> str:
    try:
        return parse_host(value).base_url
    except (ValueError, UsageError, ConfigError) as exc:
        message = getattr(exc, "message", str(exc))
        raise UsageError(f"{origin}: not a usable address {value!r}: {message}") from exc


def _config_host(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """`server.host` from the sollama config file, when that file exists and sets it."""
    from ollama_ops.config import config_file_path, load_file

    explicit = environ.get("SOLLAMA_CONFIG")
    path = config_file_path(explicit or None)
    if not path.is_file():
        return None
    host = load_file(path).get("server", {}).get("host")
    return (str(host), f"config:{path}") if host else None


def discover(host: str | None = None, *, api_key: str | None = None,
             environ: Mapping[str, str] | None = None) -> Discovery:
    """Resolve the address (see the module docstring). Raises UsageError for an unusable address and
    ConfigError for a broken config file."""
    env: Mapping[str, Any] = os.environ if environ is None else environ
    if host:
        return Discovery(_base_url(host, "argument"), "argument", gateway=bool(api_key), api_key=api_key)
    url = env.get("SOLLAMA_URL", "").strip()
    if url:
        key = api_key or env.get("SOLLAMA_API_KEY") or None
        return Discovery(_base_url(url, "SOLLAMA_URL"), "SOLLAMA_URL", gateway=True, api_key=key)
    configured = _config_host(env)
    if configured is not None:
        value, source = configured
        return Discovery(_base_url(value, source), source, api_key=api_key)
    ollama_host = env.get("OLLAMA_HOST", "").strip()
    if ollama_host:
        return Discovery(_base_url(ollama_host, "OLLAMA_HOST"), "OLLAMA_HOST", api_key=api_key)
    return Discovery(parse_host(DEFAULT_HOST).base_url, "default", api_key=api_key)
