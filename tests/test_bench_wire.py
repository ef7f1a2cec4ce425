"""The bench's raw-asyncio HTTP/1.1 client (`client/wire.py`): against the stub (every fault kind,
keep-alive reuse) and fed byte by byte through a fake transport (chunked decoding split at awkward boundaries)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ollama_ops.client.wire import Failure, WireClient, WireConnection

BODY = b'{"model":"stub-model","prompt":"hi","stream":true}'


async def _exchange(client: WireClient, body: bytes = BODY, path: str = "/api/generate"
                    ) -> tuple[dict[str, Any] | Failure, list[float], float]:
    times: list[float] = []
    sent: list[float | None] = [0.0, None]
    try:
        result: dict[str, Any] | Failure = await client.exchange(path, body, times, sent)
    except Failure as exc:
        result = exc
    return result, times, sent[0]


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def _exchanges(url: str, count: int = 1, *, timeout: float = 5, connect_timeout: float = 2) -> list[Any]:
    """`count` requests one after another on one fresh client, as `_exchange` results."""
    async def main() -> list[Any]:
        client = WireClient(url, timeout=timeout, connect_timeout=connect_timeout)
        try:
            return [await _exchange(client) for _ in range(count)]
        finally:
            client.close()

    return _run(main())


# -- against the stub -----------------------------------------------------------------------------------------

def test_stream_times_every_text_chunk_and_reuses_the_connection(stub) -> None:
    stub.configure(tokens=5)

    async def main() -> tuple[list[Any], int, int]:
        client = WireClient(stub.url, timeout=5, connect_timeout=2)
        try:
            results = [await _exchange(client) for _ in range(4)]
            return results, len(client._all), len(client.idle)
        finally:
            client.close()

    results, connections, idle = _run(main())
    assert connections == 1 and idle == 1  # four requests, one keep-alive connection
    for final, times, sent in results:
        assert isinstance(final, dict) and final["done"] is True and final["eval_count"] == 5
        assert len(times) == 5 and sent <= times[0] and times == sorted(times)
    assert [r[:2] for r in stub.requests[-4:]] == [("POST", "/api/generate")] * 4
    assert stub.requests[-1][2] == json.loads(BODY)


def test_concurrent_requests_grow_the_pool_to_the_concurrency(stub) -> None:
    stub.configure(tokens=3, token_delay=0.01)

    async def main() -> tuple[list[Any], int]:
        client = WireClient(stub.url, timeout=5, connect_timeout=2)
        try:
            results = []
            for _ in range(3):
                results += await asyncio.gather(*(_exchange(client) for _ in range(4)))
            return results, len(client._all)
        finally:
            client.close()

    results, connections = _run(main())
    assert connections == 4
    assert all(isinstance(r[0], dict) and len(r[1]) == 3 for r in results)


@pytest.mark.parametrize(("script", "kind", "needle"), [
    ({"status": 503}, "http_503", "HTTP 503"),
    ({"status": 500}, "http_500", "HTTP 500"),
    ({"status": 404, "error": 'model "stub-model" not found, try pulling it first'}, "model_not_found",
     "not found, try pulling"),
    ({"error_after": 2}, "server_error", "server error"),
    ({"disconnect_after": 2}, "disconnect", "mid-stream"),
    ({"malformed_after": 1}, "malformed", "malformed line"),
    ({"stall_after": 1}, "timeout", "timeout"),
])
def test_every_fault_kind(stub, script: dict, kind: str, needle: str) -> None:
    stub.configure(tokens=4, **script)
    # the second request may reuse or replace the connection
    for failure, _times, _sent in _exchanges(stub.url, 2, timeout=0.4):
        assert isinstance(failure, Failure), failure
        assert failure.kind == kind and needle in str(failure)


def test_connection_refused_is_a_connect_failure() -> None:
    from tests.conftest import free_port

    [(failure, times, _)] = _exchanges(f"http://127.0.0.1:{free_port()}", timeout=1, connect_timeout=1)
    assert isinstance(failure, Failure) and failure.kind == "connect" and times == []


def test_a_reset_mid_stream_is_a_disconnect_and_the_chunks_before_it_are_kept() -> None:
    """A peer that sends two chunks and then resets the connection (RST, not FIN)."""
    import socket
    import struct
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    line = b'{"response":"tok","done":false}\n'
    chunk = b"%x\r\n%s\r\n" % (len(line), line)

    def serve() -> None:
        peer, _ = listener.accept()
        peer.settimeout(5)
        peer.recv(65536)
        peer.sendall(head + chunk + chunk)
        threading.Event().wait(0.2)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # with linger 0: RST

    thread = threading.Thread(target=serve)
    thread.start()

    try:
        [(failure, times, sent)] = _exchanges(f"http://127.0.0.1:{listener.getsockname()[1]}")
    finally:
        thread.join(5)
        listener.close()
    assert isinstance(failure, Failure) and failure.kind == "disconnect", failure
    assert "ConnectionResetError" in str(failure)
    assert len(times) == 2 and sent < times[0] <= times[1]


def test_only_plain_http() -> None:
    assert WireClient.for_url("https://example.invalid") is None
    assert WireClient.for_url("http://127.0.0.1:11434") is not None
    with pytest.raises(ValueError):
        WireClient("https://127.0.0.1:1")


def test_request_bytes_are_built_once() -> None:
    client = WireClient("http://127.0.0.1:8080/prefix/", timeout=1)
    req = client.request_bytes("/api/chat", BODY)
    assert req is client.request_bytes("/api/chat", BODY)
    head, _, body = req.partition(b"\r\n\r\n")
    assert body == BODY
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /prefix/api/chat HTTP/1.1"
    assert b"Host: 127.0.0.1:8080" in lines and f"Content-Length: {len(BODY)}".encode() in lines
    assert b"Content-Type: application/json" in lines and b"Connection: keep-alive" in lines


# -- fed through a fake transport -----------------------------------------------------------------------------

class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    abort = close

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


LINES = [
    b'{"model":"m","response":"Hel","done":false}\n',
    b'{"model":"m","response":"","done":false}\n',  # empty: not a token
    b'{"model":"m","response":"lo","done":false}\n{"model":"m","response":" w","done":false}\n',
    b'{"model":"m","response":"","thinking":"hm","done":false}\n',
    b'{"model":"m","response":"","done":true,"eval_count":4,"total_duration":5}\n',
]
TEXT_LINES = 4


def _chunked(parts: list[bytes]) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return out + b"0\r\n\r\n"


HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")
CHUNKED = HEAD + _chunked(LINES)
BODY_BYTES = b"".join(LINES)
LENGTH = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/x-ndjson\r\n\r\n" % len(BODY_BYTES)
          + BODY_BYTES)
ERROR_TEXT = b'{"error":"model \\"x\\" not found, try pull"}'
ERROR_404 = (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
             % len(ERROR_TEXT) + ERROR_TEXT)


def _feed(pieces: list[bytes], *, close_after: bool = False) -> tuple[WireConnection, Any, list[float]]:
    async def main() -> tuple[WireConnection, Any, list[float]]:
        conn = WireConnection()
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        times: list[float] = []
        conn.start(b"request", times, None)
        fut = conn.fut
        assert fut is not None and transport.written == [b"request"]
        for piece in pieces:
            conn.data_received(piece)
        if close_after:
            conn.connection_lost(None)
        assert fut.done(), "the response was not complete"
        exc = fut.exception()
        return conn, exc if exc is not None else fut.result(), times
    return _run(main())


def _splits(data: bytes) -> list[int]:
    return list(range(1, len(data)))


@pytest.mark.parametrize("cut", _splits(CHUNKED))
def test_chunked_split_anywhere(cut: int) -> None:
    conn, final, times = _feed([CHUNKED[:cut], CHUNKED[cut:]])
    assert isinstance(final, dict) and final["eval_count"] == 4
    assert len(times) == TEXT_LINES
    assert conn.fut is None and not conn.closed  # ready for the next request on the same connection


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 13])
def test_chunked_in_small_pieces(step: int) -> None:
    pieces = [CHUNKED[i:i + step] for i in range(0, len(CHUNKED), step)]
    conn, final, times = _feed(pieces)
    assert isinstance(final, dict) and final["done"] and len(times) == TEXT_LINES and not conn.closed


@pytest.mark.parametrize("cut", _splits(LENGTH)[::3])
def test_content_length_split_anywhere(cut: int) -> None:
    conn, final, times = _feed([LENGTH[:cut], LENGTH[cut:]])
    assert isinstance(final, dict) and final["eval_count"] == 4 and len(times) == TEXT_LINES and not conn.closed


def test_keep_alive_two_responses_on_one_connection() -> None:
    async def main() -> list[Any]:
        conn = WireConnection()
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        out = []
        for data in (CHUNKED, LENGTH):
            times: list[float] = []
            conn.start(b"r", times, None)
            fut = conn.fut
            assert fut is not None
            conn.data_received(data)
            out.append((fut.result(), len(times)))
        return out

    assert [(f["eval_count"], n) for f, n in _run(main())] == [(4, TEXT_LINES), (4, TEXT_LINES)]


def test_read_until_close_body() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n" + BODY_BYTES
    conn, final, times = _feed([data[:50], data[50:]], close_after=True)
    assert isinstance(final, dict) and len(times) == TEXT_LINES and conn.closed


def test_connection_close_header_closes_after_the_answer() -> None:
    data = LENGTH.replace(b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nConnection: close\r\n")
    conn, final, _ = _feed([data])
    assert isinstance(final, dict) and conn.closed


@pytest.mark.parametrize("cut", [5, 20, 60, len(ERROR_404) - 3])
def test_http_error_with_body_text(cut: int) -> None:
    conn, failure, times = _feed([ERROR_404[:cut], ERROR_404[cut:]])
    assert isinstance(failure, Failure) and failure.kind == "model_not_found"
    assert str(failure) == 'HTTP 404: model "x" not found, try pull' and times == []
    assert not conn.closed  # the answer was read whole: the connection stays usable


def test_http_500_chunked_error() -> None:
    data = b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked([b"boom\n"])
    _, failure, _ = _feed([data])
    assert isinstance(failure, Failure) and failure.kind == "http_500" and "boom" in str(failure)


def test_closed_mid_body_is_a_disconnect() -> None:
    cut = len(HEAD) + 60
    conn, failure, times = _feed([CHUNKED[:cut]], close_after=True)
    assert isinstance(failure, Failure) and failure.kind == "disconnect" and len(times) == 1


def test_stream_ending_without_final_is_a_disconnect() -> None:
    data = HEAD + _chunked(LINES[:1])
    conn, failure, _ = _feed([data])
    assert isinstance(failure, Failure) and failure.kind == "disconnect" and "final" in str(failure)


@pytest.mark.parametrize(("line", "kind"), [
    (b"not json at all\n", "malformed"),
    (b'["a list"]\n', "malformed"),
    (b'{"error":"out of memory"}\n', "server_error"),
])
def test_bad_lines(line: bytes, kind: str) -> None:
    conn, failure, times = _feed([HEAD + _chunked([LINES[0], line, LINES[-1]])])
    assert isinstance(failure, Failure) and failure.kind == kind and len(times) == 1
    assert conn.closed


@pytest.mark.parametrize("data", [
    b"SPDY/9 200 OK\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    HEAD + b"zz\r\n",
    HEAD + b"3\r\nabcXX",
])
def test_invalid_http_is_a_disconnect(data: bytes) -> None:
    conn, failure, _ = _feed([data])
    assert isinstance(failure, Failure) and failure.kind == "disconnect" and conn.closed


def test_timeout_fires_on_a_stall() -> None:
    async def main() -> Any:
        conn = WireConnection()
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        times: list[float] = []
        conn.start(b"r", times, 0.05)
        fut = conn.fut
        assert fut is not None
        conn.data_received(CHUNKED[:len(HEAD) + 60])
        try:
            await fut
        except Failure as exc:
            return exc, transport.closed, len(times)
        return None

    failure, closed, n = _run(main())
    assert failure.kind == "timeout" and closed and n == 1


# -- the streaming-layer path (https:// servers; here over http to the stub) ---------------------------------------

@pytest.mark.parametrize(("script", "kind"), [({}, None), ({"error_after": 2}, "server_error"),
                                               ({"malformed_after": 1}, "malformed"), ({"status": 503}, "http_503")])
def test_the_runner_without_a_wire_client_times_chunks_and_names_faults(stub, script: dict, kind: str | None) -> None:
    """The Runner's streaming-layer path shares the line splitter with the wire client: same records, same error
    kinds."""
    from types import SimpleNamespace

    from ollama_ops.client.transport import StreamTransport
    from ollama_ops.core.bench.load import LoadSpec
    from ollama_ops.core.bench.phases import PhaseSize, PhaseTimeline
    from ollama_ops.core.bench.prompts import PromptItem, plan_payloads
    from ollama_ops.services.bench.runner import Runner
    from ollama_ops.services.bench.session import open_session

    stub.configure(tokens=4, token_delay=0.002, **script)
    plan = plan_payloads([PromptItem(prompt="hi")], model="stub-model", api="generate", max_tokens=None)
    records: list[Any] = []

    async def main() -> None:
        async with open_session(SimpleNamespace(base_url=stub.url, timeout=5, connect_timeout=2)) as session:
            runner = Runner(StreamTransport(session, timeout=5), "/api/generate", plan, records.append)
            spec = LoadSpec(concurrency=1, requests=3)
            await runner.run(spec, PhaseTimeline(PhaseSize(), 3, None, PhaseSize()))

    _run(main())
    assert len(records) == 3
    for record in records:
        if kind is None:
            assert record.ok and record.output_tokens == 4 and record.output_tokens_source == "server"
            assert len(record.itl) == 3 and 0 < record.ttft <= record.e2el
        else:
            assert not record.ok and record.error_kind == kind, record
