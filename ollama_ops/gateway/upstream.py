"""The upstream: the library's low-level streaming layer (`client.stream.StreamSession`) to the configured Ollama
(keep-alive connections, no body decompression, so bytes pass through untouched), plus its health probe. Only
this URL is ever contacted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ollama_ops.client.stream import RawResponse, StreamSession
from ollama_ops.errors import SollamaError


class Upstream:
    def __init__(self, base_url: str, *, connect_timeout: float = 3.0, idle_timeout: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout, self.idle_timeout = connect_timeout, idle_timeout
        self.session: StreamSession | None = None
        self.up: bool | None = None

    async def start(self) -> None:
        self.session = StreamSession(self.base_url, connect_timeout=self.connect_timeout,
                                     read_timeout=self.idle_timeout)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def open(self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None,
             head_timeout: float | None = None) -> Awaitable[RawResponse]:
        """One request, raw, to await (see `StreamSession.open` for the errors it raises)."""
        assert self.session is not None, "Upstream.start() first"
        return self.session.open(method, path, body=body, headers=headers, head_timeout=head_timeout)

    async def get_json(self, path: str) -> Any:
        """GET `path` and decode its JSON; OSError when it does not answer 200."""
        import json

        resp = await self.open("GET", path)
        try:
            raw = await resp.read()
        finally:
            resp.close()
        if resp.status != 200:
            raise OSError(f"{path} answered {resp.status}")
        return json.loads(raw)

    async def probe(self, timeout: float = 2.0) -> bool:
        """GET / answers 200 ("Ollama is running")."""
        try:
            async with asyncio.timeout(timeout):
                resp = await self.open("GET", "/")
                try:
                    await resp.read()
                finally:
                    resp.release()
                self.up = resp.status == 200
        except (SollamaError, TimeoutError):
            self.up = False
        return bool(self.up)
