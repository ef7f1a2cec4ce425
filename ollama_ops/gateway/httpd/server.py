"""The listeners: serve an ASGI app until the first SIGTERM/SIGINT (or `request_stop`), then stop accepting, let
unfinished responses run for up to the drain timeout, close every connection."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

from ollama_ops.gateway.httpd.conn import HttpConn
from ollama_ops.gateway.httpd.cycle import Cycle


class HttpServer:
    """Serve `app` (ASGI 3) on listening sockets until the first SIGTERM/SIGINT, then drain and stop."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, drain_timeout: float = 10.0,
                 keep_alive_s: float = 75.0, startup: Callable[[], Awaitable[None]] | None = None,
                 shutdown: Callable[[], Awaitable[None]] | None = None,
                 on_signal: Callable[[int], None] | None = None) -> None:
        self.app = app
        self.drain_timeout = drain_timeout
        self.keep_alive_s = keep_alive_s
        self._startup, self._shutdown, self._on_signal = startup, shutdown, on_signal
        self.connections: set[HttpConn] = set()
        self.signals: list[int] = []
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._stop: asyncio.Event | None = None

    async def run_app(self, cycle: Cycle) -> None:
        try:
            await self.app(cycle.scope, cycle.receive, cycle.send)
        except asyncio.CancelledError:
            if not cycle.conn.lost:
                cycle.conn.transport.close()  # type: ignore[union-attr]
            raise
        except Exception as exc:  # noqa: BLE001 - the app failed: a 500 (or a cut connection), never a traceback
            sys.stderr.write(f"gateway: {cycle.scope['method']} {cycle.scope['path'][:200]} failed: "
                             f"{type(exc).__name__}: {str(exc)[:200]}\n")
            if not cycle.started and not cycle.conn.lost:
                try:
                    cycle.keep_alive = False
                    await cycle.send({"type": "http.response.start", "status": 500,
                                      "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                                  (b"content-length", b"21")]})
                    await cycle.send({"type": "http.response.body", "body": b"Internal Server Error"})
                except RuntimeError:
                    pass
            elif not cycle.complete and cycle.conn.transport is not None:
                cycle.conn.transport.close()
        else:
            if not cycle.complete and not cycle.conn.lost and cycle.conn.transport is not None:
                cycle.conn.transport.close()  # the app returned without finishing its answer
        finally:
            cycle.release()

    def _signal(self, sig: int) -> None:
        self.signals.append(sig)
        if len(self.signals) == 1:
            self._act(sig)
        else:
            self.drain_timeout = 0  # a second signal: stop waiting for in-flight answers

    def _act(self, sig: int) -> None:
        if self._on_signal is not None:
            self._on_signal(sig)
        if self._stop is not None:
            self._stop.set()

    def request_stop(self) -> None:
        """Stop as at a signal (from any thread)."""
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)

    async def serve(self, sockets: list, *, signals: bool = True) -> None:
        """Serve until the first SIGTERM/SIGINT (with `signals`) or `request_stop()`, then drain and return."""
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._startup is not None:
            await self._startup()
        listeners = [await self.loop.create_server(lambda: HttpConn(self), sock=sock, backlog=2048)
                     for sock in sockets]
        handled = (signal.SIGINT, signal.SIGTERM) if signals else ()
        for sig in handled:
            self.loop.add_signal_handler(sig, self._signal, sig)
        if self.signals:  # signals that came while it started (recorded by `run`'s handlers)
            self._act(self.signals[0])
            if len(self.signals) > 1:
                self.drain_timeout = 0
        try:
            await self._stop.wait()
            self.stopping = True
            for listener in listeners:
                listener.close()
            for conn in list(self.connections):
                conn.shutdown()
            start = self.loop.time()
            while self.connections and self.loop.time() < start + self.drain_timeout:  # a 2nd signal sets it 0
                await asyncio.sleep(0.02)
            tasks = [c.task for conn in self.connections for c in conn.cycles if c.task is not None]
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()  # the caller's tasks see a disconnect and close their upstreams
            if tasks:
                await asyncio.wait(tasks, timeout=2.0)
        finally:
            for sig in handled:
                self.loop.remove_signal_handler(sig)
            for listener in listeners:
                listener.close()
            if self._shutdown is not None:
                await self._shutdown()

    def run(self, sockets: list) -> None:
        """Serve in a fresh uvloop loop until the first SIGTERM/SIGINT. A signal that comes before the loop's
        handlers are in place (while the gateway starts) is recorded, and acted on as soon as it serves."""
        import uvloop

        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._record) for sig in handled}
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self.serve(sockets))
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _record(self, sig: int, _frame: object) -> None:
        self.signals.append(sig)
