"""The gateway's resolved configuration (from the `gateway:` section, flags already folded in) and the start-up
safety rule: auth may be off only on loopback."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ollama_ops.core.hosts import HostAddress, check_host
from ollama_ops.errors import ConfigError, SollamaError, UsageError

DEFAULT_PORT = 8000


@dataclass
class GatewayConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_PORT
    upstream: str = "http://127.0.0.1:11434"
    slots: int = 1
    workers: int = 1  # processes of `serve --workers N` (above 1 only with `state`)
    auth: str = "auto"  # auto | required | off
    metrics_token: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    body_limit: int = 32 * 1024 * 1024
    queue_depth: int = 256
    max_wait: float = 120.0
    first_byte_timeout: float = 300.0
    idle_timeout: float = 300.0
    connect_timeout: float = 3.0
    drain_timeout: float = 30.0
    log_prompts: bool = False
    limits_storage: str = "memory://"
    insecure_no_auth: bool = False
    keys_path: Path | None = None
    access_log_path: Path | None = None
    access_log_bytes: int = 10 * 1024 * 1024
    usage_db: Path | None = None  # None = the history database
    metrics_dir: Path | None = None  # `serve --workers N`: the workers' prometheus files (set by the supervisor)
    # the fleet (ollama_ops/fleet): several hosts, shared state for several replicas
    upstreams: list[tuple[str, int]] = field(default_factory=list)  # (base URL, slots); empty = `upstream`
    state: str | None = None  # redis://… ; None = in-process
    store: str | None = None  # postgresql://… ; None = the keys file and SQLite
    lease_ttl: float = 6.0
    poll_interval: float = 2.0

    @property
    def fleet(self) -> bool:
        """Several hosts or shared state: requests go through the fleet's host pool."""
        return bool(self.upstreams) or bool(self.state)

    @property
    def effective_limits_storage(self) -> str:
        """The limit windows live in the shared Redis when there is one (unless limits_storage names another)."""
        if self.state and self.limits_storage == "memory://":
            return self.state
        return self.limits_storage

    @property
    def listen_url(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"http://{host}:{self.listen_port}"

    @property
    def loopback(self) -> bool:
        return _listen_address(self.listen_host, self.listen_port).is_loopback


def _listen_address(host: str, port: int) -> HostAddress:
    return HostAddress("http", host, port)


_LISTEN = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]*)(?::(\d{1,5}))?")


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `HOST` (port 8000), `[::1]:PORT`, or `:PORT` (all interfaces)."""
    m = _LISTEN.fullmatch(value.strip())
    if not m or not value.strip():
        raise ConfigError(f"gateway.listen must be HOST:PORT, got {value!r:.60}")
    host, port = m.group(1).strip("[]") or "0.0.0.0", int(m.group(2) or DEFAULT_PORT)
    if not 0 < port < 65536:
        raise ConfigError(f"gateway.listen port must be 1-65535, got {value!r:.60}")
    return host, port


def _upstream_url(flag: str | None, configured: str | None, server_host: str) -> str:
    """The one upstream, read strictly (core.hosts.check_host): a mistyped --upstream is a usage error (exit 2) and
    a mistyped gateway.upstream a config error, never a quiet fall-back to the default daemon's address."""
    from ollama_ops.core.hosts import HostError

    value = flag or configured or server_host  # server.host was checked when the settings were loaded
    try:
        return check_host(value).base_url
    except HostError as exc:
        if flag:
            raise UsageError(f"invalid --upstream {flag!r:.80}: {exc}") from None
        raise ConfigError(f"gateway.upstream {value!r:.80} is not a valid address: {exc}") from None


def from_settings(settings, *, listen: str | None = None, upstream: str | None = None, slots: int | None = None,
                  workers: int | None = None, insecure_no_auth: bool = False) -> GatewayConfig:
    """The GatewayConfig from sollama's Settings and the command's flags (`workers`: --workers, else
    gateway.workers); refuses several workers without shared state (`check_workers`)."""
    gw = settings.gateway
    host, port = parse_listen(listen or gw.listen)
    upstream_url = _upstream_url(upstream, gw.upstream, settings.server.host)
    config = GatewayConfig(
        listen_host=host, listen_port=port, upstream=upstream_url,
        slots=slots or gw.slots or settings.server.num_parallel or 1, auth=gw.auth,
        metrics_token=gw.metrics_token, cors_origins=list(gw.cors_origins), body_limit=gw.body_limit,
        queue_depth=gw.queue_depth, max_wait=gw.max_wait, first_byte_timeout=gw.first_byte_timeout,
        idle_timeout=gw.idle_timeout, connect_timeout=settings.client.connect_timeout,
        drain_timeout=gw.drain_timeout, log_prompts=gw.log_prompts, limits_storage=gw.limits_storage,
        insecure_no_auth=insecure_no_auth, access_log_bytes=settings.logging.max_log_bytes,
        upstreams=[] if upstream else parse_upstreams(list(gw.upstreams or []),
                                                     slots or gw.slots or settings.server.num_parallel or 1),
        state=_check_url("state", gw.state, ("redis://", "rediss://", "unix://")),
        store=_check_url("store", gw.store, ("postgresql://", "postgres://")),
        lease_ttl=gw.lease_ttl, poll_interval=gw.poll_interval)
    config.workers = workers if workers is not None else gw.workers
    check_workers(config, flag=workers is not None)
    return config


_UPSTREAM = re.compile(r"\s*(\S+)(?:\s+slots\s*=\s*(\d+))?\s*")


def parse_upstreams(items: list[str], default_slots: int) -> list[tuple[str, int]]:
    """`gateway.upstreams` entries, "URL" or "URL slots=N", into (base URL, slots); ConfigError when malformed
    or repeated."""
    out: list[tuple[str, int]] = []
    for item in items:
        m = _UPSTREAM.fullmatch(item or "")
        if not m:
            raise ConfigError(f"gateway.upstreams: expected 'URL' or 'URL slots=N', got {item!r:.80}")
        try:
            url = check_host(m.group(1)).base_url  # strict: a typo must not fall back to the default daemon
        except (ValueError, SollamaError) as exc:
            raise ConfigError(f"gateway.upstreams: invalid address {m.group(1)!r:.80}: {exc}") from exc
        slots = int(m.group(2)) if m.group(2) else default_slots
        if not 1 <= slots <= 1024:
            raise ConfigError(f"gateway.upstreams: slots must be 1-1024, got {slots} for {url}")
        if any(u == url for u, _ in out):
            raise ConfigError(f"gateway.upstreams: {url} is listed twice")
        out.append((url, slots))
    return out


def _check_url(name: str, value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None or not value.strip():
        return None
    if not value.strip().startswith(schemes):
        raise ConfigError(f"gateway.{name} must start with {' or '.join(schemes)}, got {value.split('@')[-1]!r:.80}")
    return value.strip()


WORKERS_NEED_STATE = ("{} above 1 needs shared state (gateway.state: redis://…): each worker would keep its own "
                      "queue, slots and limit windows, so together they would exceed the upstream's slots and every "
                      "key's limits")


def check_workers(config: GatewayConfig, *, flag: bool = True) -> None:
    """Several workers need shared state: without it a usage error (exit 2) for --workers, a config error (exit
    3) for gateway.workers (`flag=False`)."""
    if config.workers <= 1 or config.state:
        return
    if flag:
        raise UsageError(WORKERS_NEED_STATE.format("--workers"))
    raise ConfigError(WORKERS_NEED_STATE.format(f"gateway.workers ({config.workers})"),
                      hint="set gateway.state, or gateway.workers: 1")


def check_exposure(config: GatewayConfig, keys: int) -> None:
    """Refuse (ConfigError, exit 3) to serve beyond loopback without keys, unless --insecure-no-auth."""
    if config.loopback or config.insecure_no_auth:
        return
    if config.auth == "off":
        raise ConfigError(f"gateway.auth is off but the gateway would listen on {config.listen_url}, beyond "
                          "loopback", hint="listen on 127.0.0.1, turn auth on, or pass --insecure-no-auth")
    if keys == 0:
        raise ConfigError(f"no API keys exist, so the gateway on {config.listen_url} would be open to the network",
                          hint="create one with `sollama keys create NAME`, or pass --insecure-no-auth")
