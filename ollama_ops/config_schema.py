"""The settings schema: one dataclass per config section, each field's type and allowed range.

Add a config key here (with its default in `config/default.yaml`). The types and the `_rule` metadata are what
`config_check.validate_mapping` checks a file, the environment and the flags against; `config.load_settings`
resolves the values. Values themselves are never written here: the shipped YAML is the only place for defaults.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
WEEK_S = 7 * 86400.0  # the longest timeout, as for the command-line flags (core/options.py)


def _rule(**kw: Any) -> Any:
    return field(metadata=kw)


@dataclass
class ServerSettings:
    host: str = _rule(address=True)
    models_dir: str | None = _rule()
    keep_alive: str | int | None = _rule(duration=True)
    num_parallel: int | None = _rule(min=1)
    max_loaded_models: int | None = _rule(min=0)
    context_length: int | None = _rule(min=0)
    kv_cache_type: str | None = _rule(choices=KV_CACHE_TYPES)
    flash_attention: bool | None = _rule()
    max_queue: int | None = _rule(min=1)
    no_cloud: bool | None = _rule()
    start_timeout: float = _rule(min=0.1, max=WEEK_S)
    extra_env: dict[str, str] = _rule()


@dataclass
class OllamaSettings:
    binary: str | None = _rule()


@dataclass
class MemorySettings:
    reserve: str | int = _rule()
    enforce: bool = _rule()


@dataclass
class ClientSettings:
    connect_timeout: float = _rule(min=0.01, max=WEEK_S)
    read_timeout: float = _rule(min=0.01, max=WEEK_S)
    retries: int = _rule(min=0, max=10)
    busy_retries: int = _rule(min=0, max=10)
    breaker_failures: int = _rule(min=1)
    breaker_cooldown: float = _rule(min=0, max=WEEK_S)


@dataclass
class GenerateSettings:
    timeout: float = _rule(min=0.01, max=WEEK_S)
    keep_alive: str | int | None = _rule(duration=True)


@dataclass
class BenchSettings:
    concurrency: int = _rule(min=1, max=4096)
    requests: int = _rule(min=1)
    warmup: int = _rule(min=0)
    max_tokens: int = _rule(min=1)
    prompts: str = _rule(nonempty=True)
    api: str = _rule(choices=("generate", "chat"))
    timeout: float = _rule(min=0.01, max=WEEK_S)


@dataclass
class ReportSettings:
    threshold: float = _rule(min=0, max=1000)
    gated_metrics: list[str] = _rule()


@dataclass
class LoggingSettings:
    level: str = _rule(choices=("debug", "info", "warning", "error"))
    max_log_bytes: int = _rule(min=1024)


@dataclass
class WatchSettings:
    interval: float = _rule(min=0.01, max=WEEK_S)
    probe_timeout: float = _rule(min=0.01, max=WEEK_S)
    probe_model: str | None = _rule()
    failures: int = _rule(min=1, max=1000)
    backoff: float = _rule(min=0, max=WEEK_S)
    backoff_max: float = _rule(min=0, max=WEEK_S)
    max_restarts: int = _rule(min=1, max=1000)
    on_event: list[str] = _rule()


@dataclass
class GatewaySettings:
    """`sollama serve` (see ollama_ops/gateway/)."""

    listen: str = _rule(nonempty=True)
    upstream: str | None = _rule(address=True)
    slots: int | None = _rule(min=1, max=1024)
    workers: int = _rule(min=1, max=64)
    auth: str = _rule(choices=("auto", "required", "off"))
    metrics_token: str | None = _rule()
    cors_origins: list[str] = _rule()
    body_limit: int = _rule(min=1024, max=2**40)
    queue_depth: int = _rule(min=0, max=10**7)
    max_wait: float = _rule(min=0.01, max=WEEK_S)
    first_byte_timeout: float = _rule(min=0.01, max=WEEK_S)
    idle_timeout: float = _rule(min=0.01, max=WEEK_S)
    drain_timeout: float = _rule(min=0, max=WEEK_S)
    log_prompts: bool = _rule()
    limits_storage: str = _rule(nonempty=True)
    upstreams: list[str] = _rule()
    state: str | None = _rule()
    store: str | None = _rule()
    lease_ttl: float = _rule(min=0.5, max=3600)
    poll_interval: float = _rule(min=0.1, max=3600)


@dataclass
class Settings:
    server: ServerSettings
    ollama: OllamaSettings
    memory: MemorySettings
    client: ClientSettings
    generate: GenerateSettings
    bench: BenchSettings
    report: ReportSettings
    logging: LoggingSettings
    watch: WatchSettings
    gateway: GatewaySettings
    # Where each leaf value came from ("default", "file:<path>", "env:<VAR>", "flag:--x"), keyed "section.key".
    sources: dict[str, str] = field(default_factory=dict, repr=False)
    config_file: Path | None = None


SECTIONS: dict[str, type] = {name: tp for name, tp in typing.get_type_hints(Settings).items()
                             if isinstance(tp, type) and is_dataclass(tp)}
HINTS: dict[str, dict[str, Any]] = {name: typing.get_type_hints(cls) for name, cls in SECTIONS.items()}

# Environment variables that are not spelled SOLLAMA_<SECTION>_<KEY>, lowest precedence first.
ENV_ALIASES: dict[str, list[str]] = {
    "server.host": ["OLLAMA_HOST", "SOLLAMA_SERVER_HOST"],
    "ollama.binary": ["SOLLAMA_OLLAMA_BIN", "SOLLAMA_OLLAMA_BINARY"],
}
