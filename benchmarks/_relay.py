"""A raw byte relay for `gateway_overhead.py --floor`: each connection to it gets one connection to the upstream,
and bytes go across both ways as they are read (asyncio protocols on uvloop, no HTTP parsing at all). What it adds
is the floor of two extra loopback hops on the machine, which no gateway can go under.

    .venv/bin/python benchmarks/_relay.py LISTEN_PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class _Upstream(asyncio.Protocol):
    def __init__(self, down: _Downstream) -> None:
        self.down = down
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        _no_delay(transport)

    def data_received(self, data: bytes) -> None:
        if self.down.transport is not None:
            self.down.transport.write(data)

    def connection_lost(self, exc) -> None:
        if self.down.transport is not None:
            self.down.transport.close()


class _Downstream(asyncio.Protocol):
    upstream_port = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.up: _Upstream | None = None
        self.pending: list[bytes] = []
        _no_delay(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_connection(lambda: _Upstream(self), "127.0.0.1", self.upstream_port)
        except OSError:
            self.transport.close()
            return
        self.up = up
        for data in self.pending:
            up.transport.write(data)  # type: ignore[union-attr]
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()


def _no_delay(transport) -> None:
    import socket

    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Downstream, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    _Downstream.upstream_port = int(sys.argv[2])
    uvloop.run(_serve(int(sys.argv[1])))
