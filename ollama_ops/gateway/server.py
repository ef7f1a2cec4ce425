"""Run the gateway in the foreground under uvicorn (uvloop, httptools): bind first (a taken port is a one-line
error, not a traceback), refuse unsafe exposure, and on SIGTERM stop accepting, answer the queued 503, let
in-flight requests finish for up to the drain timeout, then exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

from ollama_ops.errors import Interrupted, SollamaError
from ollama_ops.gateway.app import build_app
from ollama_ops.gateway.compose import build_gateway, open_keyring
from ollama_ops.gateway.runtime import Gateway
from ollama_ops.gateway.settings import GatewayConfig, check_exposure


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SollamaError(f"cannot listen on {host}:{port}: the address is already in use",
                               hint="choose another with --listen") from exc
        raise SollamaError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, with the drain step at the first signal and no re-raised signal at the end (SIGTERM is
    a normal stop: exit 0)."""

    def __init__(self, config: uvicorn.Config, gw: Gateway) -> None:
        super().__init__(config)
        self.gw = gw
        self.loop: asyncio.AbstractEventLoop | None = None
        self.signals: list[int] = []

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        with self.capture_signals():
            await self._serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def _drain(self, sig: int) -> None:
        refused = self.gw.begin_drain()
        sys.stderr.write(f"{signal.Signals(sig).name}: draining ({refused} queued request(s) refused, "
                         f"{self.gw.admission.in_flight} in flight get up to {self.gw.config.drain_timeout:g} s)\n")
        sys.stderr.flush()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.signals.append(sig)
        if not self.should_exit and self.loop is not None:
            self.loop.call_soon_threadsafe(self._drain, sig)
        super().handle_exit(sig, frame)


def serve(config: GatewayConfig, *, on_ready: Callable[[GatewayConfig, int], None] | None = None) -> None:
    """Serve until SIGTERM (returns) or SIGINT (raises Interrupted)."""
    keyring = open_keyring(config)
    check_exposure(config, len(keyring))
    sock = bind(config.listen_host, config.listen_port)
    config.listen_port = sock.getsockname()[1]
    gw = build_gateway(config, keyring=keyring)
    uconfig = uvicorn.Config(build_app(gw), loop="uvloop", http="httptools", ws="none", lifespan="on",
                             access_log=False, log_level="warning", server_header=False,
                             # uvicorn's stub says int; it hands the seconds to asyncio.wait_for, so a float works
                             timeout_graceful_shutdown=config.drain_timeout,  # type: ignore[arg-type]
                             timeout_keep_alive=75)
    server = _Server(uconfig, gw)
    if on_ready is not None:
        on_ready(config, len(keyring))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if signal.SIGINT in server.signals:
        raise Interrupted("interrupted")
