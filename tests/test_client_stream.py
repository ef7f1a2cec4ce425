"""The async side's low-level streaming layer (`client.stream.StreamSession`) on both transports (the wire one
for http://, aiohttp), against the protocol stub: raw status, headers and bytes; keep-alive reuse; and every
transport failure mapped into the one error tree."""

from __future__ import annotations

import asyncio
import json

import pytest

from ollama_ops.client.stream import StreamSession
from ollama_ops.errors import RequestTimeout, ServerError, ServerUnreachable
from tests.conftest import free_port

BODY = json.dumps({"model": "stub-model", "prompt": "hi"}).encode()
TRANSPORTS = ["auto", "aiohttp"]


def _lines(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_raw_bytes_headers_and_keep_alive(stub, transport):
    stub.configure(tokens=3, token_text=["a", "b", "c"], token_delay=0.005)

    async def main() -> tuple:
        session = StreamSession(stub.url, transport=transport)
        try:
            first = await session.open("POST", "/api/generate", body=BODY, headers={"X-Request-ID": "abc"})
            ctype = first.headers.get("content-type"), "Content-Type" in first.headers
            chunks = [c async for c in first.chunks()]
            first.release()
            second = await session.open("POST", "/api/generate", json={"model": "stub-model", "prompt": "x"})
            raw2 = await second.read()
            second.release()
            missing = await session.open("GET", "/api/nothing-here")
            body404 = await missing.read()
            missing.release()
            return first.status, ctype, b"".join(chunks), len(chunks), raw2, missing.status, body404
        finally:
            await session.close()

    status, ctype, raw, n, raw2, status404, body404 = asyncio.run(main())
    assert status == 200 and ctype[0] is not None and "ndjson" in ctype[0] and ctype[1]
    objs = _lines(raw)
    assert [o.get("response") for o in objs[:-1]] == ["a", "b", "c"] and objs[-1]["done"] is True
    assert n >= 2  # bytes handed on as they came, not gathered into one
    assert _lines(raw2)[-1]["done"] is True
    assert status404 == 404 and body404
    assert stub.request_count >= 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wire_pool_reuses_one_connection(stub, transport):
    stub.configure(tokens=2, token_delay=0.0)

    async def main() -> int:
        session = StreamSession(stub.url, transport=transport)
        try:
            for _ in range(5):
                resp = await session.open("POST", "/api/generate", body=BODY)
                await resp.read()
                resp.release()
            if session._wire is not None:
                return len(session._wire.idle)
            return len(session._session.connector._conns.get(next(iter(session._session.connector._conns)), []))
        finally:
            await session.close()

    assert asyncio.run(main()) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("script", "error", "before"), [
    ({"stall_after": 1}, RequestTimeout, 1),
    ({"disconnect_after": 1}, ServerError, 1),
])
def test_mid_body_failures_are_the_error_tree(stub, transport, script, error, before):
    stub.configure(tokens=5, token_delay=0.005, **script)
    seen: list[bytes] = []

    async def main() -> None:
        session = StreamSession(stub.url, read_timeout=0.3, transport=transport)
        try:
            resp = await session.open("POST", "/api/generate", body=BODY)
            try:
                async for chunk in resp.chunks():
                    seen.append(chunk)
            finally:
                resp.close()
        finally:
            await session.close()

    with pytest.raises(error):
        asyncio.run(main())
    assert len(_lines(b"".join(seen))) == before  # the lines before the fault came through as they were


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_is_server_unreachable(transport):
    async def main() -> None:
        session = StreamSession(f"http://127.0.0.1:{free_port()}", transport=transport)
        try:
            await session.open("POST", "/api/generate", body=BODY)
        finally:
            await session.close()

    with pytest.raises(ServerUnreachable) as info:
        asyncio.run(main())
    assert info.value.exit_code == 4 and "refused" in info.value.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_head_in_time_is_request_timeout(stub, transport):
    stub.configure(tokens=3, stall_after=0)  # stream: false: nothing at all is sent

    async def main() -> None:
        session = StreamSession(stub.url, read_timeout=0.3, transport=transport)
        try:
            await session.open("POST", "/api/generate", json={"model": "stub-model", "prompt": "hi",
                                                              "stream": False})
        finally:
            await session.close()

    with pytest.raises(RequestTimeout):
        asyncio.run(main())


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_once():
    """A reused connection that the server closes without answering a byte (it had closed it while idle) is
    replaced by a new one and the request sent once more; a fresh connection that fails is an error."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
    connections: list[int] = []

    async def main() -> tuple[list[int], list[bytes], type]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(0)
            n = 0
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                n += 1
                if n == 2 or b"/fail" in head:  # the second request on a connection: closed unanswered
                    writer.close()
                    return
                writer.write(answer)
                await writer.drain()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        session = StreamSession(f"http://127.0.0.1:{port}")
        bodies = []
        try:
            for _ in range(2):
                resp = await session.open("POST", "/api/generate", body=BODY)
                bodies.append(await resp.read())
                resp.release()
            try:
                await session.open("POST", "/fail", body=BODY)
            except ServerError as exc:
                failed = type(exc)
        finally:
            await session.close()
            server.close()
        return connections, bodies, failed

    conns, bodies, failed = asyncio.run(main())
    assert bodies == [b'{"ok":true}'] * 2
    # A: the 1st request, then the 2nd (closed unanswered) → B: the 2nd again, then /fail (closed) → C: /fail
    # again, closed on a fresh connection: the error
    assert len(conns) == 3
    assert failed is ServerError
