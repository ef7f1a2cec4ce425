"""The composition root of `sollama serve`: build a `Gateway` with the parts the configuration names. The single
box gets the embedded defaults (the keys file, in-process limit windows, SQLite usage, one upstream); a
`gateway.store` of PostgreSQL, a Redis `gateway.state` and `gateway.upstreams` bring the fleet's parts. This is
the one gateway module that knows the fleet: the gateway depends on its interfaces only (`dispatch.Dispatcher`)."""

from __future__ import annotations

import time
from typing import Any

from ollama_ops.gateway.keystore import KeyRing, keys_path
from ollama_ops.gateway.limiter import Limiter, make_storage
from ollama_ops.gateway.runtime import Gateway
from ollama_ops.gateway.settings import GatewayConfig


def open_keyring(config: GatewayConfig, *, clock=time.time) -> Any:
    """The keys file, or PostgreSQL when `gateway.store` names it."""
    if config.store:
        from ollama_ops.fleet.pgstore import PgKeyRing

        return PgKeyRing(config.store, clock=clock)
    return KeyRing(config.keys_path or keys_path(), clock=clock)


def open_limiter(config: GatewayConfig) -> Limiter:
    """In-process windows, or the shared Redis ones (asyncio, one script per decision, concurrency too) when
    `gateway.state` is Redis."""
    storage = config.effective_limits_storage
    if config.state and storage == config.state and storage.startswith(("redis://", "rediss://")):
        from ollama_ops.fleet.limits import SharedLimiter

        return SharedLimiter(storage, lease_ttl=config.lease_ttl)
    return Limiter(make_storage(storage))


def open_usage_sink(config: GatewayConfig) -> Any:
    """The SQLite usage sink, or PostgreSQL when `gateway.store` names it."""
    if config.store:
        from ollama_ops.fleet.pgstore import PgUsageSink

        return PgUsageSink(config.store)
    from ollama_ops.gateway.usage import UsageSink

    return UsageSink(config.usage_db)


def build_gateway(config: GatewayConfig, *, keyring: Any = None, clock=time.time) -> Gateway:
    """The gateway for `config`: over one upstream, or the fleet's dispatcher when `config.fleet`."""
    dispatcher = None
    if config.fleet:
        from ollama_ops.fleet.runtime import Fleet

        dispatcher = Fleet
    return Gateway(config, keyring=keyring or open_keyring(config, clock=clock), limiter=open_limiter(config),
                   dispatcher=dispatcher, usage_sink=open_usage_sink, clock=clock)
