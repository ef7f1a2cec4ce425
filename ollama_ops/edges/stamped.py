"""TCP streams as asyncio transports whose received bytes carry the kernel's arrival time.

A load generator that clocks a chunk when its event loop gets round to reading it adds its own backlog to every
latency: at concurrency 32 the 32 first tokens of a lockstep batch arrive together, and the 16th one read is
stamped ~0.5-1 ms after it arrived. On Linux the kernel stamps every received packet when asked to
(``SO_TIMESTAMPNS``); ``recvmsg`` hands over the stamp of the last packet whose bytes it returns. This transport
reads with ``recvmsg`` and exposes that stamp as ``rx_ns`` (``time.monotonic_ns()`` clock, the same clock as
``time.perf_counter()``) for the ``data_received`` call it precedes. Where the kernel gives no stamp (another OS,
the first packets after timestamping is switched on, a stamp that a clock step made implausible) ``rx_ns`` is
the time of the read, as with any asyncio transport; ``counts`` tallies reads as [kernel-stamped, read-time]
(a list that several transports may share).

Only what the bench client (`client.wire`) and the protocol stub need: write (buffered when the socket
is full), close (after flushing), abort, EOF and error handling, `get_extra_info("socket")`. No write flow
control (both peers write small amounts or read promptly).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_ANC_SIZE = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_MAX_READ = 256 * 1024
_MAX_AGE_NS = 10 * 10**9  # an arrival stamp older than this is a clock step, not a backlog
_TIMESPEC = struct.Struct("qq")


def enable_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp the packets `sock` receives; False where it cannot."""
    if SO_TIMESTAMPNS is None or not _ANC_SIZE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def arrival_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive stamp in `ancdata` on the monotonic clock (ns), or None where there is none or it is
    implausible. The stamp is CLOCK_REALTIME; its age is read against the wall clock and taken off the
    monotonic clock, so a wall-clock step between packet and read cannot move a stamp by more than the read
    delay it is measuring."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            age = time.time_ns() - (sec * 1_000_000_000 + nsec)
            now = time.monotonic_ns()
            return now - age if 0 <= age <= _MAX_AGE_NS else None
    return None


class StampedTransport(asyncio.Transport):
    """One connected TCP socket driven by `loop` for `protocol` (asyncio.Protocol); see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: asyncio.Protocol,
                 counts: list[int] | None = None) -> None:
        super().__init__({"socket": sock})
        sock.setblocking(False)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stamped = enable_timestamps(sock)
        self.rx_ns = 0
        self.counts = counts if counts is not None else [0, 0]
        self._loop, self._sock, self._fd, self._protocol = loop, sock, sock.fileno(), protocol
        self._out = bytearray()
        self._closing = self._lost = False
        self._reading = True
        protocol.connection_made(self)
        if not self._closing:
            loop.add_reader(self._fd, self._read_ready)

    # -- reading ----------------------------------------------------------------------------------------------

    def _read_ready(self) -> None:
        if self._lost or not self._reading:  # a wake-up queued before this transport stopped reading
            return
        try:
            if self.stamped:
                data, anc, _flags, _addr = self._sock.recvmsg(_MAX_READ, _ANC_SIZE)
            else:
                data, anc = self._sock.recv(_MAX_READ), []
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._force_close(exc)
            return
        if not data:
            self._eof()
            return
        stamp = arrival_ns(anc) if anc else None
        if stamp is None:
            stamp = time.monotonic_ns()
            self.counts[1] += 1
        else:
            self.counts[0] += 1
        self.rx_ns = stamp
        try:
            self._protocol.data_received(data)
        except Exception as exc:  # noqa: BLE001 - like asyncio: a protocol bug closes its connection, loudly
            self._loop.call_exception_handler({"message": "protocol.data_received() failed", "exception": exc,
                                               "transport": self, "protocol": self._protocol})
            self._force_close(exc)

    def _eof(self) -> None:
        self.pause_reading()
        keep_open = False
        try:
            keep_open = bool(self._protocol.eof_received())
        finally:
            if not keep_open:
                self.close()

    def pause_reading(self) -> None:
        if self._reading and not self._lost:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    # -- writing ----------------------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        if not self._out:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._force_close(exc)
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
            self._loop.add_writer(self._fd, self._write_ready)
        self._out += data

    def _write_ready(self) -> None:
        if self._lost:
            return
        try:
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._force_close(exc)
            return
        del self._out[:sent]
        if not self._out:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._force_close(None)

    def get_write_buffer_size(self) -> int:
        return len(self._out)

    def can_write_eof(self) -> bool:
        return False

    # -- closing ----------------------------------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading, flush what is buffered, then close (connection_lost(None) on a later loop turn)."""
        if self._closing:
            return
        self._closing = True
        self.pause_reading()
        if not self._out:
            self._force_close(None)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = self._closing = True
        self._out.clear()
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._reading = False
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._sock.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol


async def open_stamped(host: str, port: int, protocol_factory: Callable[[], Any],
                       counts: list[int] | None = None) -> tuple[StampedTransport, Any]:
    """Connect to (host, port), trying each resolved address in turn (numeric hosts skip the resolver); returns
    (transport, protocol). Time it out from outside (`asyncio.wait_for`): a cancelled attempt closes its socket."""
    loop = asyncio.get_running_loop()
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        addrs: list[tuple[Any, ...]] = [(family, socket.SOCK_STREAM, 0, "", (host, port))]
    except ValueError:
        addrs = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, kind, proto, _name, addr in addrs:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        protocol = protocol_factory()
        return StampedTransport(loop, sock, protocol, counts), protocol
    raise error or OSError(f"cannot resolve {host!r}")
