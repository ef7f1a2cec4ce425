"""The gateway's HTTP/1.1 server (`gateway.httpd`) at the byte level: a real listening socket, a small ASGI app,
raw client sockets sending exactly the bytes under test (keep-alive, pipelining, Expect: 100-continue, chunked
request bodies, HEAD, refusals, the push and disconnect extensions, an app that fails, the drain at stop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ollama_ops.gateway.httpd import HEAD_LIMIT, HttpServer, scope_extension
from tests.gateway_helpers import serving_in_thread

pytest.importorskip("uvloop")

GONE = threading.Event()
RELEASE = threading.Event()


async def _app(scope, receive, send) -> None:
    path = scope["path"]
    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        out = json.dumps({"method": scope["method"], "body": body.decode(), "query": scope["query_string"].decode(),
                          "client": scope["client"][0]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]})
        await send({"type": "http.response.body", "body": out})
    elif path == "/stream":
        push = scope_extension(scope, "sollama.push")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x/ndjson")]})
        assert push(b"one\n") is True
        await asyncio.sleep(0.01)
        push(b"two\n")
        push(b"three\n", True)
    elif path == "/hold":
        scope_extension(scope, "sollama.on_disconnect")(GONE.set)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        for _ in range(500):  # bounded: 5 s
            if RELEASE.is_set():
                break
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"last"})
    elif path == "/boom":
        raise RuntimeError("the app failed")
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


@contextlib.contextmanager
def server(drain_timeout: float = 5.0) -> Iterator[tuple[int, HttpServer]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    srv = HttpServer(_app, drain_timeout=drain_timeout, keep_alive_s=5.0)
    with serving_in_thread(srv, sock):
        yield sock.getsockname()[1], srv


def _conn(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _read_until(s: socket.socket, predicate, limit: int = 1 << 20) -> bytes:
    data = b""
    while not predicate(data) and len(data) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _responses(data: bytes) -> int:
    return data.count(b"HTTP/1.1 ")


def test_keep_alive_answers_two_requests_on_one_connection() -> None:
    with server() as (port, _), _conn(port) as s:
        for body in (b"a", b"bb"):
            s.sendall(b"POST /echo?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            data = _read_until(s, lambda d: d.endswith(b"}"))
            head, _, payload = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"connection: close" not in head.lower()
            assert json.loads(payload) == {"method": "POST", "body": body.decode(), "query": "x=1",
                                           "client": "127.0.0.1"}


def test_pipelined_requests_are_answered_in_order() -> None:
    with server() as (port, _), _conn(port) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst"
                  b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond")
        data = _read_until(s, lambda d: d.count(b"}") == 2)
        assert _responses(data) == 2
        assert data.index(b'"first"') < data.index(b'"second"')


def test_chunked_request_body_is_read_whole() -> None:
    with server() as (port, _), _conn(port) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        data = _read_until(s, lambda d: d.endswith(b"}"))
        assert json.loads(data.partition(b"\r\n\r\n")[2])["body"] == "abcde"


def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    with server() as (port, _), _conn(port) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = _read_until(s, lambda d: d.endswith(b"\r\n\r\n"))
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"body")
        data = _read_until(s, lambda d: d.endswith(b"}"))
        assert data.startswith(b"HTTP/1.1 200 OK") and json.loads(data.partition(b"\r\n\r\n")[2])["body"] == "body"


def test_head_gets_the_headers_only() -> None:
    with server() as (port, _), _conn(port) as s:
        s.sendall(b"HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nz")
        data = _read_until(s, lambda d: d.endswith(b"}"))
        first, second = data.split(b"HTTP/1.1 ")[1:]
        assert first.startswith(b"200 OK") and first.endswith(b"\r\n\r\n") and b"content-length:" in first
        assert json.loads(second.partition(b"\r\n\r\n")[2])["body"] == "z"


@pytest.mark.parametrize(("raw", "status"), [
    (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
    (b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (HEAD_LIMIT + 10) + b"\r\n\r\n", b"431"),
    (b"GET /" + b"a" * (HEAD_LIMIT + 10) + b" HTTP/1.1\r\nHost: t\r\n\r\n", b"414"),
    (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
])
def test_bad_requests_get_a_status_and_the_connection_closes(raw: bytes, status: bytes) -> None:
    with server() as (port, _), _conn(port) as s:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            s.sendall(raw)
        data = _read_until(s, lambda d: False)  # to the close
        assert data.split(b" ")[1] == status
        assert b"connection: close" in data.lower()


def test_push_extension_streams_chunks_and_ends_the_body() -> None:
    with server() as (port, _), _conn(port) as s:
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        data = _read_until(s, lambda d: d.endswith(b"0\r\n\r\n"))
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head
        assert body == b"4\r\none\n\r\n4\r\ntwo\n\r\n6\r\nthree\n\r\n0\r\n\r\n"


def test_disconnect_extension_fires_when_the_caller_leaves_mid_response() -> None:
    GONE.clear()
    RELEASE.clear()
    with server() as (port, _):
        s = _conn(port)
        s.sendall(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"first" in _read_until(s, lambda d: b"first" in d)
        assert not GONE.is_set()
        s.close()
        assert GONE.wait(5)
        RELEASE.set()


def test_an_app_that_fails_gets_a_500_and_the_server_goes_on() -> None:
    with server() as (port, _):
        with _conn(port) as s:
            s.sendall(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
            data = _read_until(s, lambda d: False)
            assert data.startswith(b"HTTP/1.1 500 ") and data.endswith(b"Internal Server Error")
        with _conn(port) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok")
            assert json.loads(_read_until(s, lambda d: d.endswith(b"}")).partition(b"\r\n\r\n")[2])["body"] == "ok"


def test_stop_lets_the_answer_in_flight_finish_then_closes() -> None:
    GONE.clear()
    RELEASE.clear()
    with server(drain_timeout=5.0) as (port, srv):
        s = _conn(port)
        s.sendall(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"first" in _read_until(s, lambda d: b"first" in d)
        srv.request_stop()
        for _ in range(200):  # the listener closes first
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the server still accepted connections while draining")
        RELEASE.set()
        data = _read_until(s, lambda d: False)  # the rest, then the close
        assert data.endswith(b"4\r\nlast\r\n0\r\n\r\n")
        assert not GONE.is_set()
        s.close()
