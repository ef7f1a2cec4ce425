"""The upstream pool: one aiohttp session to the configured Ollama (keep-alive connections, no body
decompression, so bytes pass through untouched). Only this URL is ever contacted."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp


class Upstream:
    def __init__(self, base_url: str, *, connect_timeout: float = 3.0, idle_timeout: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout, self.idle_timeout = connect_timeout, idle_timeout
        self.session: aiohttp.ClientSession | None = None
        self.up: bool | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout, sock_read=self.idle_timeout)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                             skip_auto_headers=("User-Agent", "Accept-Encoding"))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def request(self, method: str, path: str, *, data: Any = None, headers: dict[str, str] | None = None):
        assert self.session is not None, "Upstream.start() first"
        return self.session.request(method, self.base_url + path, data=data, headers=headers,
                                    allow_redirects=False, compress=False)

    async def probe(self, timeout: float = 2.0) -> bool:
        """GET / answers 200 ("Ollama is running")."""
        try:
            async with asyncio.timeout(timeout):
                async with self.request("GET", "/") as resp:
                    await resp.read()
                    self.up = resp.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            self.up = False
        return bool(self.up)
