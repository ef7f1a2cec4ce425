"""The seam every bench request goes through: `Transport`, the `Failure` it raises, the NDJSON line splitting
that both transports share, and `StreamTransport`, the bench's https:// path over the library's streaming layer
(`client.stream`; `client.wire` speaks plain http://).

Error kinds of a `Failure`: connect (refused / connect timeout) · timeout (no complete answer within the
per-request timeout, e.g. a stall) · disconnect (closed mid-body, or an unreadable HTTP answer) · http_NNN /
model_not_found (status ≥ 400, with the body's error text) · malformed (a line that is not a JSON object) ·
server_error (an `{"error": …}` line).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Protocol

from ollama_ops.core.ndjson import chunk_text
from ollama_ops.errors import LocalLimit, RequestTimeout, ServerUnreachable, SollamaError

if TYPE_CHECKING:
    from ollama_ops.client.stream import StreamSession

DONE_FALSE = b'"done":false'
EMPTY_RESPONSE = b'"response":""'
EMPTY_CONTENT = b'"content":""'
THINKING = b'"thinking":"'
QUEUE_WAIT_HEADER = b"x-queue-wait-ms"  # a sollama gateway's wait before sending upstream (ms)

# asyncio's timers wake up to 1 ms late (epoll waits in whole ms, rounded up): `wait_until` sleeps until YIELD_S
# before the due time (so it wakes 0.2-1.2 ms early), yields loop turns (other streams go on) until SPIN_S before
# it, and spins the last SPIN_S without yielding (a callback run in a yield could make the send late; the chunks
# of other streams meanwhile keep their kernel timestamps). A longer spin only burns CPU: on a shared core that
# makes the kernel preempt the client more often, right when it is about to send (measured: 2 ms of spin gave a
# worse p99 than 1.2 ms under load).
YIELD_S = 0.0012
SPIN_S = 0.0002


class Failure(Exception):
    """A request that did not complete; `kind` is the error kind stored with its record."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Transport(Protocol):
    """How the bench sends one streamed request and clocks its chunks.

    `exchange` POSTs `body` to `path` (at perf_counter time `due` when given: `wait_until`, once it holds a
    connection), appends the arrival time (perf_counter seconds) of every text chunk to `times`, replaces `sent[0]`
    with the time the request's bytes went to the socket, sets `sent[1]` to the queue wait (seconds) a sollama
    gateway reported in `X-Queue-Wait-Ms` (left as is when there is none), and returns the final object, or raises
    `Failure`. `reads` counts response reads stamped by the kernel / at read time; a transport without
    `kernel_stamps` clocks every chunk when its event loop reads it."""

    reads: list[int]
    kernel_stamps: bool

    async def exchange(self, path: str, body: bytes, times: list[float], sent: list[float | None],
                       due: float | None = None) -> dict[str, Any]: ...

    def close(self) -> None: ...


async def wait_until(due: float) -> None:
    """Return at perf_counter time `due` as closely as the event loop allows (see YIELD_S / SPIN_S)."""
    clock = time.perf_counter
    delay = due - clock()
    if delay > YIELD_S:
        await asyncio.sleep(delay - YIELD_S)
    while due - clock() > SPIN_S:
        await asyncio.sleep(0)
    while clock() < due:
        pass


def queue_wait_s(value: bytes | str) -> float | None:
    """An `X-Queue-Wait-Ms` header value → seconds (None when it is not a finite, non-negative number)."""
    try:
        ms = float(value)
    except ValueError:
        return None
    return ms / 1000.0 if 0 <= ms < float("inf") else None


def status_kind(status: int, body: bytes) -> str:
    if status == 404 and b"not found" in body:
        return "model_not_found"
    return f"http_{status}"


def slow_line(line: bytes, now: float, times: list[float]) -> dict[str, Any] | None:
    """A line the byte test did not settle: the final object (returned), a text chunk (timed), an empty line, or
    a failure (raised)."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        shown = line.decode("utf-8", "replace").strip()[:80]
        raise Failure("malformed", f"malformed line in the stream: {shown!r}")
    if "error" in obj:
        raise Failure("server_error", f"server error: {obj['error']}")
    text, thinking = chunk_text(obj)
    if text or thinking:
        times.append(now)
    return obj if obj.get("done") else None


def feed_lines(rest: bytes, data: bytes, now: float, times: list[float]) -> tuple[bytes, dict[str, Any] | None]:
    """Split `rest + data` into NDJSON lines: each text chunk's arrival (`now`) goes to `times`; returns the
    incomplete last line and the first final object among them (None if none). Both bench paths use it."""
    lines = (rest + data).split(b"\n") if rest else data.split(b"\n")
    rest = lines.pop()
    final = None
    append = times.append
    for line in lines:
        # A streaming chunk (the bulk of all lines) is recognised by its bytes, without json.loads.
        if DONE_FALSE in line and not line.startswith(b'{"error"'):
            if (EMPTY_RESPONSE in line or EMPTY_CONTENT in line) and THINKING not in line:
                continue
            append(now)
            continue
        obj = slow_line(line, now, times)
        if obj is not None and final is None:
            final = obj
    return rest, final


_HEADERS = {"Content-Type": "application/json", "User-Agent": "sollama-bench"}


class StreamTransport:
    """The bench's `Transport` over a `client.stream.StreamSession` (owned by the caller), for https:// servers:
    every chunk clocked when the loop reads it (no kernel stamps), so TTFT reads 0.4 ms (concurrency 1) to ~2 ms
    (concurrency 32) high next to the wire client. Same line splitter, records and error kinds as the wire
    client."""

    kernel_stamps = False

    def __init__(self, session: StreamSession, headers: dict[str, str] | None = None, sse: bool = False,
                 timeout: float | None = None) -> None:
        self.session = session
        self.reads = [0, 0]
        self.headers = _HEADERS | (headers or {})
        self.sse = sse
        self.timeout = timeout

    async def exchange(self, path: str, body: bytes, times: list[float], sent: list[float | None],
                       due: float | None = None) -> dict[str, Any]:
        """POST one request (at `due`) and collect the arrival times of text chunks; returns the final object."""
        from ollama_ops.client.protocol import error_message
        from ollama_ops.core.bench.sse import StreamError

        if due is not None:
            await wait_until(due)
        sent[0] = time.perf_counter()
        try:
            resp = await self.session.open("POST", path, body=body, headers=self.headers, total=self.timeout)
            try:
                wait = resp.headers.get("X-Queue-Wait-Ms")
                if wait is not None:
                    sent[1] = queue_wait_s(wait)
                if resp.status >= 400:
                    raw = await resp.read()
                    raise Failure(status_kind(resp.status, raw), f"HTTP {resp.status}: {error_message(raw)}")
                final = await self._body(resp, times)
            except BaseException:
                resp.close()
                raise
            resp.release()
        except LocalLimit:
            raise Failure("local", "too many open files") from None
        except ServerUnreachable as exc:
            raise Failure("connect", f"cannot connect: {exc.message}") from None
        except RequestTimeout:
            raise Failure("timeout", "no complete answer within the per-request timeout") from None
        except SollamaError as exc:
            raise Failure("disconnect", exc.message) from None
        except StreamError as exc:
            raise Failure(exc.kind, str(exc)) from None
        if final is None:
            raise Failure("disconnect", "the stream ended before its final chunk")
        return final

    async def _body(self, resp: Any, times: list[float]) -> dict[str, Any] | None:
        reads = self.reads
        if self.sse:
            from ollama_ops.core.bench.sse import SseDecoder

            decoder = SseDecoder()
            async for data in resp.chunks():
                reads[1] += 1
                final = decoder.feed(data, time.perf_counter(), times)
                if final is not None:
                    return final
            return decoder.end(time.perf_counter(), times)
        rest = b""
        async for data in resp.chunks():
            reads[1] += 1
            rest, final = feed_lines(rest, data, time.perf_counter(), times)
            if final is not None:
                return final
        if rest.strip():
            return slow_line(rest, time.perf_counter(), times)
        return None

    def close(self) -> None:
        """Nothing of its own to close: the session belongs to the caller."""
