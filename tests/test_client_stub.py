"""The Ollama client against the protocol stub: streaming, every fault → its exception, retries, breaker, and
the async (aiohttp) flavour."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from ollama_ops.client.protocol import GenerateRequest
from ollama_ops.client.resilience import CircuitBreaker, backoff_delays
from ollama_ops.client.sync import OllamaClient
from ollama_ops.core.ndjson import FinalChunk, TextChunk
from ollama_ops.errors import (
    BadRequest,
    MalformedResponse,
    ModelNotFound,
    OllamaError,
    RequestTimeout,
    ServerBusy,
    ServerError,
    ServerUnreachable,
)
from tests.conftest import free_port

MODEL = "stub-model"


def gen(**kw) -> GenerateRequest:  # type: ignore[no-untyped-def]
    return GenerateRequest(model=kw.pop("model", MODEL), prompt=kw.pop("prompt", "hello there"), **kw)


@pytest.fixture
def client(stub):
    with OllamaClient(stub.url, read_timeout=5, retries=0) as c:
        yield c


# -- streaming -------------------------------------------------------------------------------------------------------

def test_stream_yields_text_then_final_with_timings_in_seconds(client, stub):
    stub.configure(tokens=4, token_text=["Hel", "lo", ",", " you"], token_delay=0.02)
    events = list(client.stream(gen(options={"num_predict": 8})))
    assert [type(e) for e in events] == [TextChunk] * 4 + [FinalChunk]
    assert "".join(e.text for e in events) == "Hello, you"
    final = events[-1]
    assert final.done_reason == "stop"
    t = final.timings
    assert t.eval_count == 4 and t.prompt_eval_count == 2
    # the stub measures eval as first-to-last token write plus one token delay (20 ms), so at least that; the
    # final chunk's nanoseconds arrive as seconds (a nanosecond count would read tens of millions)
    assert 0.02 <= t.eval < 1000
    assert t.total >= t.eval - 0.02 and 0 < t.load < t.total  # (the stub adds one token delay to eval)
    assert t.eval_rate == pytest.approx(4 / t.eval)
    method, path, body = stub.requests[-1]
    assert (method, path) == ("POST", "/api/generate")
    assert body == {"model": MODEL, "stream": True, "prompt": "hello there", "options": {"num_predict": 8}}


def test_chat_stream_goes_to_api_chat(client, stub):
    stub.configure(tokens=3, token_text="x")
    req = GenerateRequest(model=MODEL, messages=[{"role": "user", "content": "hi"}], system="Be brief.")
    result = client.generate(req)
    assert (result.text, result.done_reason, result.timings.eval_count) == ("xxx", "stop", 3)
    _, path, body = stub.requests[-1]
    assert path == "/api/chat"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


def test_num_predict_cut_gives_done_reason_length(client, stub):
    result = client.generate(gen(options={"num_predict": 2}))
    assert (result.done_reason, result.timings.eval_count, result.text) == ("length", 2, "tok tok ")


def test_non_streamed_generate(client, stub):
    stub.configure(tokens=3, token_text=["a", "b", "c"])
    result = client.generate(gen(stream=False))
    assert (result.text, result.done_reason, result.timings.eval_count) == ("abc", "stop", 3)
    assert stub.requests[-1][2]["stream"] is False


def test_missing_eval_count_is_zero_not_an_error(client, stub):
    stub.configure(omit_eval_count=True)
    final = list(client.stream(gen()))[-1]
    assert isinstance(final, FinalChunk)
    assert final.timings.eval_count == 0 and final.timings.total == 0.0
    assert not final.timings.has_eval_count


def test_metadata_endpoints(client, stub):
    stub.loaded.add("stub-model:latest")
    assert client.ping() > 0
    assert client.version() == "0.0.0-stub"
    assert [m["name"] for m in client.tags()] == ["stub-model:latest"]
    assert [m["name"] for m in client.ps()] == ["stub-model:latest"]
    assert client.show(MODEL)["model_info"]["llama.block_count"] == 30
    assert client.unload(MODEL)["done_reason"] == "unload"
    assert client.ps() == []
    client.delete(MODEL)
    assert client.tags() == []


def test_ping_rejects_a_server_that_is_not_ollama():
    def not_ollama(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>nginx</html>")

    with OllamaClient("http://x.test", transport=httpx.MockTransport(not_ollama)) as c:
        with pytest.raises(OllamaError, match="answers, but not as Ollama"):
            c.ping()


# -- faults → exceptions ---------------------------------------------------------------------------------------------

def test_unknown_model_is_model_not_found_with_a_hint(client, stub):
    with pytest.raises(ModelNotFound) as info:
        list(client.stream(gen(model="nope:1b")))
    assert info.value.exit_code == 1 and info.value.status == 404
    assert info.value.one_line() == "model 'nope:1b' not found (see `sollama models list`)"
    assert "not found, try pulling it first" in info.value.server_message
    with pytest.raises(ModelNotFound):
        client.show("nope:1b")


@pytest.mark.parametrize("status, exc, text", [
    (503, ServerBusy, "server busy: server busy, please try again.  maximum pending requests exceeded"),
    (400, BadRequest, "bad request: stub error (status 400)"),
    (500, ServerError, "server error: stub error (status 500)"),
    (502, ServerError, "server error: stub error (status 502)"),
    (418, OllamaError, "HTTP 418: stub error (status 418)"),
])
@pytest.mark.parametrize("stream", [True, False])
def test_http_status_maps_to_exception(client, stub, status, exc, text, stream):
    stub.configure(status=status)
    with pytest.raises(exc) as info:
        client.generate(gen(stream=stream))
    assert type(info.value) is exc
    assert info.value.message == text
    assert info.value.status == status and info.value.exit_code == 1


def test_missing_model_field_is_bad_request(client, stub):
    with pytest.raises(BadRequest, match="model is required"):
        client.generate(gen(model=""))


def _collect(iterator, into: list) -> None:  # type: ignore[no-untyped-def]
    for event in iterator:
        into.append(event)


def test_error_line_mid_stream_raises_after_the_earlier_chunks(client, stub):
    stub.configure(tokens=5, error_after=2, error="model runner crashed")
    seen: list = []
    with pytest.raises(ServerError) as info:
        _collect(client.stream(gen()), seen)
    assert seen == [TextChunk("tok "), TextChunk("tok ")]
    assert info.value.message == "server error: model runner crashed"


def test_malformed_line_names_the_bytes(client, stub):
    stub.configure(tokens=3, malformed_after=1, malformed_line='{"response": "x", oops}')
    seen: list = []
    with pytest.raises(MalformedResponse) as info:
        _collect(client.stream(gen()), seen)
    assert len(seen) == 1
    assert info.value.message == "malformed line in the server's stream: '{\"response\": \"x\", oops}'"


def test_malformed_non_streamed_body(client, stub):
    stub.configure(malformed_after=0)
    with pytest.raises(OllamaError, match="not JSON"):
        client.generate(gen(stream=False))


def test_disconnect_mid_stream_is_server_error_and_not_retried(stub):
    stub.configure(tokens=6, disconnect_after=3)
    seen: list = []
    with OllamaClient(stub.url, read_timeout=5, retries=3) as c:
        with pytest.raises(ServerError) as info:
            _collect(c.stream(gen()), seen)
    assert len(seen) == 3
    assert "broke mid-stream" in info.value.message or "before its final chunk" in info.value.message
    assert stub.request_count == 1


def test_disconnect_before_any_byte_is_server_error(stub):
    stub.configure(disconnect_after=0)
    with OllamaClient(stub.url, read_timeout=5, retries=3) as c:
        with pytest.raises(ServerError):
            list(c.stream(gen()))
    assert stub.request_count == 1


def test_stall_mid_stream_is_request_timeout(stub):
    stub.configure(tokens=4, stall_after=2)
    seen: list = []
    start = time.monotonic()
    with OllamaClient(stub.url, read_timeout=0.3) as c:
        with pytest.raises(RequestTimeout) as info:
            _collect(c.stream(gen()), seen)
    elapsed = time.monotonic() - start
    assert len(seen) == 2
    assert elapsed >= 0.25  # it waited for the stall (the message says for how long)
    assert info.value.exit_code == 5
    assert "stalled: no data for 0.3s" in info.value.message


def test_stall_of_a_non_streamed_answer_is_request_timeout(stub):
    stub.configure(stall_after=0)
    with OllamaClient(stub.url, read_timeout=5) as c:
        with pytest.raises(RequestTimeout, match="within 0.3s"):
            c.generate(gen(stream=False), read_timeout=0.3)


def test_per_call_read_timeout_overrides_the_client_default(stub):
    stub.configure(tokens=2, stall_after=1)
    with OllamaClient(stub.url, read_timeout=60) as c:
        with pytest.raises(RequestTimeout) as info:
            list(c.stream(gen(), read_timeout=0.2))
    assert "no data for 0.2s" in info.value.message  # the call's timeout, not the client's 60 s


def test_unreachable_is_exit_code_4():
    with OllamaClient(f"http://127.0.0.1:{free_port()}", retries=0) as c:
        with pytest.raises(ServerUnreachable) as info:
            c.version()
    assert info.value.exit_code == 4
    assert info.value.message.startswith("cannot connect to Ollama at http://127.0.0.1:")
    assert "sollama start" in (info.value.hint or "")


# -- retries and the circuit breaker -------------------------------------------------------------------------------

class CountingTransport(httpx.BaseTransport):
    """Counts attempts; while `down`, every attempt fails to connect (as a closed port does); else forwards."""

    def __init__(self, down: bool = True) -> None:
        self.down = down
        self.attempts: list[str] = []
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(f"{request.method} {request.url.path}")
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("call, path", [
    (lambda c: c.version(), "GET /api/version"),
    (lambda c: c.tags(), "GET /api/tags"),
    (lambda c: c.ps(), "GET /api/ps"),
    (lambda c: c.show("m"), "POST /api/show"),
    (lambda c: c.ping(), "GET /"),
    (lambda c: c.blob_exists("sha256:00"), "HEAD /api/blobs/sha256:00"),
])
def test_idempotent_calls_retry_connection_failures(call, path):
    transport = CountingTransport()
    breaker = CircuitBreaker(failures=10, cooldown=5)
    with OllamaClient("http://127.0.0.1:9", retries=2, breaker=breaker, transport=transport) as c:
        with pytest.raises(ServerUnreachable):
            call(c)
    assert transport.attempts == [path] * 3
    assert breaker.consecutive == 3 and breaker.state == "closed"


@pytest.mark.parametrize("call, path", [
    (lambda c: c.generate(gen()), "POST /api/generate"),
    (lambda c: c.generate(gen(stream=False)), "POST /api/generate"),
    (lambda c: list(c.stream(GenerateRequest(model="m", messages=[]))), "POST /api/chat"),
    (lambda c: c.delete("m"), "DELETE /api/delete"),
    (lambda c: c.unload("m"), "POST /api/generate"),
    (lambda c: list(c.create({"model": "m"})), "POST /api/create"),
])
def test_non_idempotent_calls_are_never_retried(call, path):
    transport = CountingTransport()
    with OllamaClient("http://127.0.0.1:9", retries=5, breaker=CircuitBreaker(failures=10),
                      transport=transport) as c:
        with pytest.raises(ServerUnreachable):
            call(c)
    assert transport.attempts == [path]


def test_real_closed_port_retries_with_short_jittered_backoff():
    breaker = CircuitBreaker(failures=10)
    with OllamaClient(f"http://127.0.0.1:{free_port()}", retries=3, breaker=breaker) as c:
        with pytest.raises(ServerUnreachable):
            c.tags()
    assert breaker.consecutive == 4  # one try and three retries (their delays: test_backoff_delays_…)


def test_server_errors_are_not_retried(stub):
    stub.configure(status=503)
    with OllamaClient(stub.url, retries=3) as c:
        with pytest.raises(ServerBusy):
            c.generate(gen())
    assert stub.request_count == 1


def test_breaker_opens_after_n_failures_and_fails_fast():
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, cooldown=5.0, clock=clock)
    transport = CountingTransport()
    with OllamaClient("http://127.0.0.1:9", retries=10, breaker=breaker, transport=transport) as c:
        with pytest.raises(ServerUnreachable):
            c.version()
        assert len(transport.attempts) == 3  # the breaker opened on the third failure and stopped the retries
        assert breaker.state == "open"

        for _ in range(5):
            with pytest.raises(ServerUnreachable) as info:
                c.tags()
        assert len(transport.attempts) == 3  # failed fast: no further attempt
        assert "3 connection failures in a row" in info.value.message
        assert "not retrying for 5.0s" in (info.value.hint or "")
        assert info.value.exit_code == 4

        clock.now += 4.9
        assert breaker.state == "open"
        clock.now += 0.2
        assert breaker.state == "half-open"
        with pytest.raises(ServerUnreachable):
            c.version()  # one call let through; it fails, so the breaker opens again at once
        assert len(transport.attempts) == 4
        assert breaker.state == "open"


def test_half_open_success_closes_the_breaker(stub):
    clock = FakeClock()
    breaker = CircuitBreaker(failures=2, cooldown=1.0, clock=clock)
    transport = CountingTransport()
    with OllamaClient(stub.url, retries=0, breaker=breaker, transport=transport) as c:
        for _ in range(2):
            with pytest.raises(ServerUnreachable):
                c.version()
        assert breaker.state == "open"
        transport.down = False  # the server came back
        with pytest.raises(ServerUnreachable):
            c.version()  # still within the cool-down
        clock.now += 1.0
        assert c.version() == "0.0.0-stub"
        assert breaker.state == "closed" and breaker.consecutive == 0
        assert c.tags()


def test_backoff_delays_are_full_jitter_and_capped():
    import random

    delays = list(backoff_delays(8, base=0.05, cap=1.0, rng=random.Random(1)))
    assert len(delays) == 8
    for i, d in enumerate(delays):
        assert 0 <= d <= min(1.0, 0.05 * 2**i)
    assert list(backoff_delays(0)) == []


# -- the async client ----------------------------------------------------------------------------------------------

def test_async_stream_and_generate(stub):
    from ollama_ops.client.aio import AsyncClient

    stub.configure(tokens=3, token_text=["a", "b", "c"], token_delay=0.01)

    async def main() -> tuple:
        async with AsyncClient(stub.url, read_timeout=5) as c:
            events = [e async for e in c.stream(gen())]
            result = await c.generate(GenerateRequest(model=MODEL, messages=[{"role": "user", "content": "x"}]))
            stamps = [t async for t, _ in c.stream_objects("/api/generate", {"model": MODEL, "prompt": "p"})]
            return events, result, stamps, await c.version(), await c.ps()

    events, result, stamps, version, ps = asyncio.run(main())
    assert [e.text for e in events] == ["a", "b", "c", ""]
    assert isinstance(events[-1], FinalChunk) and events[-1].timings.eval_count == 3
    assert events[-1].timings.eval > 0
    assert (result.text, result.timings.eval_count) == ("abc", 3)
    assert stamps == sorted(stamps) and len(stamps) == 4
    assert version == "0.0.0-stub"
    assert [m["name"] for m in ps] == ["stub-model:latest"]


@pytest.mark.parametrize("fault, exc", [
    ({"error_after": 2}, ServerError),
    ({"malformed_after": 2}, MalformedResponse),
    ({"stall_after": 2}, RequestTimeout),
    ({"status": 503}, ServerBusy),
])
def test_async_faults(stub, fault, exc):
    from ollama_ops.client.aio import AsyncClient

    stub.configure(tokens=4, **fault)
    seen: list = []

    async def main() -> None:
        async with AsyncClient(stub.url, read_timeout=0.3) as c:
            async for event in c.stream(gen()):
                seen.append(event)

    with pytest.raises(exc):
        asyncio.run(main())
    assert len(seen) == (0 if "status" in fault else 2)


def test_async_unreachable_and_breaker():
    from ollama_ops.client.aio import AsyncClient

    breaker = CircuitBreaker(failures=2, cooldown=60)

    async def main() -> list[int]:
        codes = []
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", breaker=breaker) as c:
            for _ in range(3):
                try:
                    await c.version()
                except ServerUnreachable as exc:
                    codes.append(exc.exit_code)
        return codes

    assert asyncio.run(main()) == [4, 4, 4]
    assert breaker.state == "open"
