"""Where the gateway sends a request: the interface the request path depends on (`Dispatcher`) and its one-host
implementation (`SingleHost`). The composition root (`gateway.compose.build_gateway`) picks this one or the
fleet's (`ollama_ops.fleet.runtime.Fleet`, several hosts); nothing in the gateway's request path imports the fleet.

A dispatcher chooses the upstream; the request path relays. It hands the dispatcher an `Attempt`: a call
`attempt(upstream, retry_ok)` that sends the request to that upstream and relays its answer. It returns None when
the exchange is done; with `retry_ok` a failure before anything reached the caller comes back as its kind
("refused", "first-byte-timeout", "reset", "502", "503") with nothing sent, so the dispatcher may try elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ollama_ops.gateway.exchange import Exchange

if TYPE_CHECKING:
    from ollama_ops.gateway.metrics import Metrics
    from ollama_ops.gateway.settings import GatewayConfig
    from ollama_ops.gateway.upstream import Upstream

Attempt = Callable[["Upstream", bool], Awaitable[str | None]]


class Dispatcher(Protocol):
    """The upstream side of the gateway, as the request path and the ops routes see it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def forward(self, ex: Exchange, send, attempt: Attempt) -> Awaitable[Any]:
        """An inference request, to await: it takes an upstream slot (the gateway's admission already counted
        it)."""

    def forward_any(self, ex: Exchange, send, attempt: Attempt) -> Awaitable[Any]:
        """A request that takes no slot (show, pull, listings...), to await."""

    async def listings(self, path: str) -> list[Any] | None:
        """For a listing route (/api/tags, /api/ps, /v1/models): the parsed answers of every host to merge, or
        None when the answer is relayed from one upstream as it is."""

    def slots_by_upstream(self) -> list[tuple[str, int]]:
        """(upstream URL, slots) for each upstream."""

    def note(self, upstream: Upstream | None, up: bool) -> None:
        """What the request path saw of an upstream (it answered, or it is unreachable)."""

    def drain(self) -> int:
        """SIGTERM: stop handing out upstream slots; the number of requests refused by that."""

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, what /readyz shows of the upstream side)."""

    async def queue_info(self) -> dict[str, Any]:
        """What /queue adds of the upstream side."""


class SingleHost:
    """One Ollama: every request goes to `config.upstream`, probed every 5 s (GET /)."""

    PROBE_S = 5.0

    def __init__(self, config: GatewayConfig, metrics: Metrics) -> None:
        from ollama_ops.gateway.upstream import Upstream

        self.config, self.metrics = config, metrics
        self.upstream = Upstream(config.upstream, connect_timeout=config.connect_timeout,
                                 idle_timeout=config.idle_timeout)
        self._probe_task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.upstream.start()
        self.note(self.upstream, await self.upstream.probe())
        self._probe_task = asyncio.create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.PROBE_S)
            self.note(self.upstream, await self.upstream.probe())

    async def stop(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        await self.upstream.close()

    def forward(self, ex: Exchange, send, attempt: Attempt) -> Awaitable[Any]:
        return attempt(self.upstream, False)  # the attempt itself, awaited by the caller: no coroutine of our own

    def forward_any(self, ex: Exchange, send, attempt: Attempt) -> Awaitable[Any]:
        return attempt(self.upstream, False)

    async def listings(self, path: str) -> list[Any] | None:
        return None

    def slots_by_upstream(self) -> list[tuple[str, int]]:
        return [(self.config.upstream, self.config.slots)]

    def note(self, upstream: Upstream | None, up: bool) -> None:
        self.upstream.up = up
        self.metrics.upstream_up.labels(self.config.upstream).set(1 if up else 0)

    def drain(self) -> int:
        return 0

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        up = await self.upstream.probe()
        self.note(self.upstream, up)
        return up, {"upstream": self.config.upstream, "upstream_up": up}

    async def queue_info(self) -> dict[str, Any]:
        return {}
