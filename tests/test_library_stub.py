"""The public library (`ollama_ops.Client`, `AsyncClient`) against the protocol stub: safe retries (503/429 with
Retry-After, never after the first streamed byte), the per-host breaker's states, the FIFO queue and QueueFull
for threads and tasks, total timeouts, the request log, discovery and a cheap `import ollama_ops`."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

import ollama_ops
from ollama_ops import AsyncClient, Client, QueueFull
from ollama_ops.client.resilience import CircuitBreaker, breaker_for, retry_after_seconds
from ollama_ops.core.ndjson import FinalChunk
from ollama_ops.errors import RequestTimeout, ServerBusy, ServerError, ServerUnreachable, SollamaError
from tests.conftest import ROOT, free_port

MODEL = "stub-model"


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's backoff sleeps, recorded instead of slept (time.sleep of the stdlib, not our code)."""
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


# -- retries: only where safe ------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [503, 429])
def test_busy_answers_are_retried_after_retry_after(stub, sleeps, status):
    stub.configure(status=status, retry_after="0.2", status_times=2, tokens=3, token_text="x")
    with Client(stub.url, busy_retries=2, breaker=CircuitBreaker()) as c:
        result = c.generate(MODEL, "hi")
    assert result.text == "xxx"
    assert stub.request_count == 3
    assert sleeps == [0.2, 0.2]


def test_busy_retries_exhausted_raise_server_busy(stub, sleeps):
    stub.configure(status=503, retry_after="1")
    with Client(stub.url, busy_retries=2, breaker=CircuitBreaker()) as c, pytest.raises(ServerBusy) as info:
        list(c.generate(MODEL, "hi", stream=True))
    assert stub.request_count == 3 and sleeps == [1.0, 1.0]
    assert info.value.status == 503


def test_retry_after_is_capped_and_read_as_a_date():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = (now + timedelta(seconds=7)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(date, now=now) == 7.0
    assert retry_after_seconds("3600") == 30.0
    assert retry_after_seconds("-5") == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_no_retry_after_the_first_streamed_byte(stub, sleeps):
    stub.configure(tokens=6, disconnect_after=2)
    seen = []
    with Client(stub.url, retries=5, busy_retries=5, breaker=CircuitBreaker()) as c:
        with pytest.raises(ServerError):
            for event in c.generate(MODEL, "hi", stream=True):
                seen.append(event.text)
    assert len(seen) == 2 and stub.request_count == 1 and sleeps == []


def test_async_no_retry_after_the_first_streamed_byte(stub):
    stub.configure(tokens=6, disconnect_after=2)
    seen: list[str] = []

    async def main() -> None:
        async with AsyncClient(stub.url, retries=5, busy_retries=5, breaker=CircuitBreaker()) as c:
            async for event in await c.generate(MODEL, "hi", stream=True):
                seen.append(event.text)

    with pytest.raises(ServerError):
        asyncio.run(main())
    assert len(seen) == 2 and stub.request_count == 1


def test_async_busy_retry_then_success(stub):
    stub.configure(status=503, retry_after="0", status_times=1, tokens=2, token_text="y")

    async def main() -> str:
        async with AsyncClient(stub.url, busy_retries=1, breaker=CircuitBreaker()) as c:
            return (await c.chat(MODEL, [{"role": "user", "content": "hi"}])).text

    assert asyncio.run(main()) == "yy"
    assert stub.request_count == 2


def test_connection_refused_is_retried_for_a_generation_too(sleeps):
    attempts: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(f"{request.method} {request.url.path}")
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with Client("http://127.0.0.1:9", retries=2, breaker=CircuitBreaker(failures=10),
                transport=httpx.MockTransport(refuse)) as c, pytest.raises(ServerUnreachable):
        c.generate(MODEL, "hi")
    assert attempts == ["POST /api/generate"] * 3 and len(sleeps) == 2


# -- the per-host circuit breaker ----------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_closed_open_half_open_closed(stub):
    clock = FakeClock()
    breaker = CircuitBreaker(failures=2, cooldown=5.0, clock=clock)
    down = {"on": True}
    inner = httpx.HTTPTransport()

    def handler(request: httpx.Request) -> httpx.Response:
        if down["on"]:
            raise httpx.ConnectError("refused", request=request)
        return inner.handle_request(request)

    with Client(stub.url, retries=0, breaker=breaker, transport=httpx.MockTransport(handler)) as c:
        assert c.breaker_state == "closed"
        for _ in range(2):
            with pytest.raises(ServerUnreachable):
                c.version()
        assert c.breaker_state == "open" and c.describe().breaker == "open"
        down["on"] = False
        with pytest.raises(ServerUnreachable, match="connection failures in a row"):
            c.version()  # open: fails fast although the server is back
        clock.now += 5.0
        assert c.breaker_state == "half-open"
        breaker.check(c.base_url)  # somebody else's trial call is out ...
        with pytest.raises(ServerUnreachable):
            c.version()  # ... so this one fails fast
        clock.now += 5.0  # the lost trial is replaced after a cool-down
        assert c.version() == "0.0.0-stub"
        assert c.breaker_state == "closed"


def test_half_open_trial_failure_opens_again():
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, cooldown=1.0, clock=clock)
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 1.0
    assert breaker.state == "half-open"
    breaker.check("x")
    breaker.record_failure()
    assert breaker.state == "open"


def test_breaker_is_shared_per_host():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, retries=0) as a, Client(url, retries=0) as b:
        assert a.breaker is b.breaker is breaker_for(url)
        for _ in range(3):
            with pytest.raises(ServerUnreachable):
                a.version()
        assert b.breaker_state == "open"
        with pytest.raises(ServerUnreachable, match="3 connection failures in a row"):
            b.version()


# -- concurrency control ---------------------------------------------------------------------------------------------

def test_threads_wait_in_fifo_order_and_the_queue_limit_raises_queue_full(stub):
    stub.configure(tokens=3, token_delay=0.05)
    finished: list[int] = []
    errors: list[BaseException] = []
    with Client(stub.url, max_concurrency=1, max_queue=3, breaker=CircuitBreaker()) as c:
        gate = c.gate

        def run(i: int) -> None:
            try:
                c.generate(MODEL, f"request {i}")
                finished.append(i)
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                errors.append(exc)

        threads = []
        for i in range(4):
            t = threading.Thread(target=run, args=(i,))
            t.start()
            threads.append(t)
            wait_for(lambda i=i: gate.active == 1 and gate.waiting == i)  # each caller queued before the next
        with pytest.raises(QueueFull, match="1 request\\(s\\) in flight and 3 waiting"):
            c.generate(MODEL, "one too many")
        for t in threads:
            t.join(30)
    assert errors == []
    assert finished == [0, 1, 2, 3]
    assert c.describe().max_concurrency == 1 and c.describe().max_queue == 3
    assert stub.request_count == 4


def test_queue_timeout_is_queue_full(stub):
    stub.configure(tokens=2, stall_after=1)
    with Client(stub.url, read_timeout=1, max_concurrency=1, queue_timeout=0.1, breaker=CircuitBreaker()) as c:
        holder = threading.Thread(target=lambda: pytest.raises(SollamaError, lambda: c.generate(MODEL, "hold")))
        holder.start()
        wait_for(lambda: c.gate.active == 1)
        with pytest.raises(QueueFull, match="queue_timeout"):
            c.generate(MODEL, "late")
        holder.join(30)
    assert stub.request_count == 1


def test_tasks_wait_in_fifo_order_and_queue_full(stub):
    stub.configure(tokens=3, token_delay=0.02)

    async def main() -> tuple[list[int], list[str]]:
        finished: list[int] = []
        refused: list[str] = []
        async with AsyncClient(stub.url, max_concurrency=2, max_queue=2, breaker=CircuitBreaker()) as c:
            async def one(i: int) -> None:
                try:
                    await c.generate(MODEL, f"r{i}")
                    finished.append(i)
                except QueueFull as exc:
                    refused.append(f"{i}: {exc.message}")

            tasks = [asyncio.create_task(one(i)) for i in range(6)]
            await asyncio.gather(*tasks)
        return finished, refused

    finished, refused = asyncio.run(main())
    assert sorted(finished) == [0, 1, 2, 3]
    assert finished[2:] == [2, 3]  # the two waiters got the freed slots in the order they queued
    assert refused == [f"{i}: request queue full: 2 request(s) in flight and 2 waiting" for i in (4, 5)]
    assert stub.request_count == 4


def test_cancelled_waiter_hands_nothing_over_and_leaves_the_queue(stub):
    stub.configure(tokens=2, token_delay=0.05)

    async def main() -> tuple[int, int, str]:
        async with AsyncClient(stub.url, max_concurrency=1, breaker=CircuitBreaker()) as c:
            first = asyncio.create_task(c.generate(MODEL, "a"))
            await asyncio.sleep(0)
            waiter = asyncio.create_task(c.generate(MODEL, "b"))
            for _ in range(100):
                await asyncio.sleep(0.001)
                if c.gate.waiting == 1:
                    break
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            waiting = c.gate.waiting
            text = (await first).text
            return waiting, c.gate.active, text

    waiting, active, text = asyncio.run(main())
    assert (waiting, active) == (0, 0) and text == "tok tok "


def test_an_async_stream_dropped_unfinished_gives_its_slot_back_at_once(stub):
    """A caller that breaks out of `async for` and drops the iterator (no aclose) frees its max_concurrency slot
    at the drop, not at the next loop turn or garbage collection: with max_queue=0, the next call would
    otherwise get QueueFull."""
    import gc

    stub.configure(tokens=50, token_delay=0.02)

    async def main() -> tuple[int, int, int, str, int, int]:
        async with AsyncClient(stub.url, max_concurrency=1, max_queue=0, breaker=CircuitBreaker()) as c:
            stream = await c.generate(MODEL, "a", stream=True)
            async for _ in stream:
                break
            held = c.gate.active
            del stream  # dropped without aclose(); no await in between
            after_drop = c.gate.active
            first = c.stream_objects("/api/generate", {"model": MODEL, "prompt": "b"})
            async for _ in first:
                break
            cycle = [first]
            cycle.append(cycle)  # kept alive only by a reference cycle: freed by the garbage collector
            del first, cycle
            gc.collect()
            after_gc = c.gate.active
            stub.configure(tokens=2, token_text="ok", token_delay=0.0)
            text = (await c.generate(MODEL, "c")).text
            closed = [s async for s in c.stream_objects("/api/generate", {"model": MODEL, "prompt": "d"})]
            return held, after_drop, after_gc, text, len(closed), c.gate.active

    held, after_drop, after_gc, text, n, active = asyncio.run(main())
    assert (held, after_drop, after_gc) == (1, 0, 0)
    assert text == "okok" and n == 3 and active == 0


def test_an_async_stream_aclose_before_and_after_start(stub):
    stub.configure(tokens=20, token_delay=0.02)

    async def main() -> tuple[int, int, list]:
        async with AsyncClient(stub.url, max_concurrency=1, max_queue=0, breaker=CircuitBreaker()) as c:
            never = c.stream_objects("/api/generate", {"model": MODEL, "prompt": "a"})
            await never.aclose()
            started = await c.generate(MODEL, "b", stream=True)
            await started.__anext__()
            during = c.gate.active
            await started.aclose()
            rest = [e async for e in started]
            return during, c.gate.active, rest

    during, after, rest = asyncio.run(main())
    assert (during, after, rest) == (1, 0, [])
    assert stub.request_count == 1  # the stream closed before its start sent nothing


# -- timeouts --------------------------------------------------------------------------------------------------------

def test_total_timeout_ends_a_slow_stream(stub):
    stub.configure(tokens=200, token_delay=0.02)
    seen = []
    with Client(stub.url, read_timeout=5, total_timeout=0.3, breaker=CircuitBreaker()) as c:
        with pytest.raises(RequestTimeout, match="total timeout of 0.3s") as info:
            for event in c.generate(MODEL, "hi", stream=True):
                seen.append(event)
    assert 0 < len(seen) < 200 and info.value.exit_code == 5


def test_async_total_timeout(stub):
    stub.configure(tokens=200, token_delay=0.02)

    async def main() -> None:
        async with AsyncClient(stub.url, total_timeout=0.3, breaker=CircuitBreaker()) as c:
            async for _ in await c.generate(MODEL, "hi", stream=True):
                pass

    with pytest.raises(RequestTimeout, match="total timeout of 0.3s"):
        asyncio.run(main())


# -- the request log -------------------------------------------------------------------------------------------------

def test_one_log_record_per_request_without_text(stub, caplog):
    stub.configure(tokens=4, token_text="secret-answer ")
    caplog.set_level(logging.INFO, logger="ollama_ops")
    with Client(stub.url, breaker=CircuitBreaker()) as c:
        c.generate(MODEL, "secret-prompt")
        list(c.chat(MODEL, [{"role": "user", "content": "secret-prompt"}], stream=True))
        stub.configure(status=404, error="nope")
        with pytest.raises(SollamaError):
            c.generate(MODEL, "secret-prompt")
    records = [r for r in caplog.records if r.name == "ollama_ops"]
    assert [(r.path, r.model, r.status, r.tokens) for r in records] == [  # type: ignore[attr-defined]
        ("/api/generate", MODEL, 200, 4), ("/api/chat", MODEL, 200, 4), ("/api/generate", MODEL, 404, None)]
    ids = {r.request_id for r in records}  # type: ignore[attr-defined]
    assert len(ids) == 3 and all(len(i) == 12 for i in ids)
    assert all(r.duration_ms >= 0 and r.attempts == 1 for r in records)  # type: ignore[attr-defined]
    text = " ".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in records)
    assert "secret" not in text


# -- discovery and describe() ----------------------------------------------------------------------------------------

def test_discovery_order(monkeypatch, tmp_path):
    def source() -> tuple[str, str, bool, bool]:
        with Client() as c:
            d = c.describe()
            return d.source, d.base_url, d.gateway, d.api_key

    assert source() == ("default", "http://127.0.0.1:11434", False, False)
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:2222")
    assert source() == ("OLLAMA_HOST", "http://127.0.0.1:2222", False, False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server:\n  host: 127.0.0.1:3333\n")
    monkeypatch.setenv("SOLLAMA_CONFIG", str(cfg))
    assert source() == (f"config:{cfg}", "http://127.0.0.1:3333", False, False)
    monkeypatch.setenv("SOLLAMA_URL", "http://127.0.0.1:4444")
    monkeypatch.setenv("SOLLAMA_API_KEY", "k-123")
    assert source() == ("SOLLAMA_URL", "http://127.0.0.1:4444", True, True)
    with Client("127.0.0.1:5555") as c:
        assert (c.describe().source, c.base_url) == ("argument", "http://127.0.0.1:5555")
    assert "k-123" not in repr(Client().discovery)


def test_api_key_is_sent_as_bearer(monkeypatch):
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"version": "gw"})

    monkeypatch.setenv("SOLLAMA_URL", "http://127.0.0.1:4444")
    monkeypatch.setenv("SOLLAMA_API_KEY", "k-123")
    with Client(transport=httpx.MockTransport(handler), breaker=CircuitBreaker()) as c:
        assert c.version() == "gw"
    assert seen == ["Bearer k-123"]


def test_ensure_running_never_starts_a_gateway(monkeypatch):
    monkeypatch.setenv("SOLLAMA_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServerUnreachable, match="the sollama gateway at .* does not answer") as info:
        ollama_ops.ensure_running(5)
    assert "never starts a gateway" in (info.value.hint or "")


def test_ensure_running_is_a_no_op_when_the_address_answers(stub):
    result = ollama_ops.ensure_running(5, host=stub.host)
    assert (result.status, result.base_url, result.source) == ("running", stub.url, "argument")


def test_import_is_cheap_and_public_names_resolve():
    code = ("import sys, ollama_ops; heavy = [m for m in ('httpx', 'aiohttp', 'yaml') if m in sys.modules]; "
            "print(heavy); from ollama_ops import Client, AsyncClient, ensure_running; "
            "print(Client.__module__, AsyncClient.__module__, ensure_running.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "ollama_ops.client.sync ollama_ops.client.aio ollama_ops.client.ensure"]
    assert (ROOT / "ollama_ops" / "py.typed").is_file()
    with pytest.raises(AttributeError):
        ollama_ops.NoSuchThing  # noqa: B018


def test_streamed_events_end_with_the_final_chunk(stub):
    stub.configure(tokens=3, token_text=["a", "b", "c"])
    with Client(stub.url, breaker=CircuitBreaker()) as c:
        events = list(c.chat(MODEL, [{"role": "user", "content": "x"}], stream=True))
    assert [e.text for e in events] == ["a", "b", "c", ""]
    assert isinstance(events[-1], FinalChunk) and events[-1].timings.eval_count == 3
