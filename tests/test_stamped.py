"""edges.stamped: received bytes carry the kernel's arrival time; the transport writes, flushes, closes."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import threading
import time
from typing import Any

import pytest

from ollama_ops.edges.stamped import SO_TIMESTAMPNS, StampedTransport, arrival_ns, open_stamped

LINUX = sys.platform.startswith("linux")


class Recorder(asyncio.Protocol):
    """Keeps what the transport hands over: (bytes, rx time in s) per data_received, EOF, connection_lost."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.chunks: list[tuple[bytes, float]] = []
        self.eof = False
        self.lost: list[Exception | None] = []
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append((data, self.transport.rx_ns / 1e9))

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)
        if not self.done.done():
            self.done.set_result(None)


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


def _timespec(ns: int) -> bytes:
    return struct.pack("qq", ns // 1_000_000_000, ns % 1_000_000_000)


def test_arrival_ns_converts_the_kernel_wall_clock_stamp_to_the_monotonic_clock() -> None:
    assert SO_TIMESTAMPNS is not None or not LINUX
    kind = SO_TIMESTAMPNS or 35
    before = time.monotonic_ns()
    stamp = arrival_ns([(socket.SOL_SOCKET, kind, _timespec(time.time_ns() - 5_000_000))])
    after = time.monotonic_ns()
    assert stamp is not None
    assert before - 5_000_000 - 1_000_000 < stamp < after - 5_000_000 + 1_000_000


@pytest.mark.parametrize("age_ns", [-3_000_000_000, 3600 * 10**9])
def test_arrival_ns_refuses_stamps_a_clock_step_made_implausible(age_ns: int) -> None:
    kind = SO_TIMESTAMPNS or 35
    assert arrival_ns([(socket.SOL_SOCKET, kind, _timespec(time.time_ns() - age_ns))]) is None


def test_arrival_ns_ignores_other_control_messages() -> None:
    assert arrival_ns([]) is None
    assert arrival_ns([(socket.SOL_SOCKET, (SO_TIMESTAMPNS or 35) + 1, _timespec(time.time_ns()))]) is None
    assert arrival_ns([(socket.SOL_SOCKET, SO_TIMESTAMPNS or 35, b"\0" * 8)]) is None


@pytest.mark.skipif(not LINUX, reason="kernel receive timestamps are a Linux feature")
def test_a_chunk_read_late_is_stamped_when_it_arrived(listener) -> None:
    """The loop is kept busy 150 ms after the peer sent: the stamp is the arrival, not the read."""

    async def main() -> tuple[Recorder, float, float]:
        transport, proto = await open_stamped("127.0.0.1", listener.getsockname()[1], Recorder)
        peer, _ = listener.accept()
        with peer:
            await asyncio.sleep(0.05)  # timestamping switched on system-wide (the kernel does it on a work queue)
            sent = time.perf_counter()
            peer.sendall(b"first token")
            time.sleep(0.15)  # the event loop is busy elsewhere
            read_from = time.perf_counter()
            for _ in range(1000):  # bounded: the bytes are already in the socket
                if proto.chunks:
                    break
                await asyncio.sleep(0.001)
            transport.close()
            await asyncio.wait_for(proto.done, 5)
        return proto, sent, read_from

    proto, sent, read_from = asyncio.run(main())
    assert b"".join(c for c, _ in proto.chunks) == b"first token"
    stamp = proto.chunks[0][1]
    assert sent <= stamp < sent + 0.02 < read_from
    assert proto.transport.counts == [1, 0]


def test_writes_beyond_the_socket_buffer_are_kept_and_flushed_before_close(listener) -> None:
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB: far more than a socket buffer takes at once
    got = bytearray()

    def reader(peer: socket.socket) -> None:
        time.sleep(0.2)  # not reading yet: the transport has to buffer
        peer.settimeout(10)
        while chunk := peer.recv(1 << 16):
            got.extend(chunk)

    async def main() -> tuple[Recorder, int]:
        transport, proto = await open_stamped("127.0.0.1", listener.getsockname()[1], Recorder)
        peer, _ = listener.accept()
        thread = threading.Thread(target=reader, args=(peer,))
        thread.start()
        transport.write(payload)
        buffered = transport.get_write_buffer_size()
        transport.close()
        assert transport.is_closing()
        transport.write(b"after close")  # ignored, like asyncio's after the connection is lost
        await asyncio.wait_for(proto.done, 10)
        await asyncio.to_thread(thread.join, 10)
        peer.close()
        return proto, buffered

    proto, buffered = asyncio.run(main())
    assert buffered > 0
    assert bytes(got) == payload
    assert proto.lost == [None]


def test_peer_close_is_eof_then_connection_lost(listener) -> None:
    async def main() -> Recorder:
        _, proto = await open_stamped("127.0.0.1", listener.getsockname()[1], Recorder)
        peer, _ = listener.accept()
        peer.sendall(b"bye")
        peer.close()
        await asyncio.wait_for(proto.done, 5)
        return proto

    proto = asyncio.run(main())
    assert [c for c, _ in proto.chunks] == [b"bye"] and proto.eof and proto.lost == [None]


def test_abort_drops_the_buffer_and_the_peer_sees_the_end(listener) -> None:
    async def main() -> tuple[Recorder, bytes]:
        transport, proto = await open_stamped("127.0.0.1", listener.getsockname()[1], Recorder)
        peer, _ = listener.accept()
        transport.abort()
        await asyncio.wait_for(proto.done, 5)
        peer.settimeout(5)
        try:
            rest = peer.recv(10)
        except ConnectionResetError:
            rest = b""
        peer.close()
        return proto, rest

    proto, rest = asyncio.run(main())
    assert rest == b"" and proto.lost == [None] and proto.transport.is_closing()


def test_a_protocol_error_closes_the_connection_loudly(listener) -> None:
    class Broken(Recorder):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("protocol bug")

    async def main() -> tuple[Broken, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: seen.append(ctx))
        _, proto = await open_stamped("127.0.0.1", listener.getsockname()[1], Broken)
        peer, _ = listener.accept()
        peer.sendall(b"x")
        await asyncio.wait_for(proto.done, 5)
        peer.close()
        return proto, seen

    proto, seen = asyncio.run(main())
    assert isinstance(proto.lost[0], RuntimeError)
    assert [str(ctx["exception"]) for ctx in seen] == ["protocol bug"]


def test_connect_failures_and_names() -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now

    async def refused() -> None:
        await open_stamped("127.0.0.1", port, Recorder)

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(refused())

    async def by_name(listener: socket.socket) -> tuple[str, bool]:
        transport, proto = await open_stamped("localhost", listener.getsockname()[1], Recorder)
        peer, _ = listener.accept()
        peer.close()
        await asyncio.wait_for(proto.done, 5)
        assert isinstance(transport, StampedTransport)
        return transport.get_extra_info("socket").family.name, proto.eof

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        family, eof = asyncio.run(by_name(sock))
    assert family == "AF_INET" and eof


def test_a_read_wake_up_queued_before_an_abort_delivers_nothing(listener) -> None:
    """A wake-up already queued when the transport was aborted (another handler of the same loop turn did it)
    must not read or call the protocol any more, as asyncio's own transports guard it."""

    async def main() -> Recorder:
        transport, proto = await open_stamped("127.0.0.1", listener.getsockname()[1], Recorder)
        peer, _ = listener.accept()
        peer.sendall(b"late bytes")  # on loopback the bytes are in this socket when sendall returns
        transport.abort()  # no await before: the loop has not read them
        transport._read_ready()  # the wake-up that was queued before the abort
        await asyncio.wait_for(proto.done, 5)
        peer.close()
        return proto

    proto = asyncio.run(main())
    assert proto.chunks == [] and proto.lost == [None]
