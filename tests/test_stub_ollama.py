"""Brief self-tests of the Ollama protocol stub (tests/stub_ollama.py)."""

import json
import socket
import threading
import time

import httpx
import pytest

try:
    from stub_ollama import BUSY_ERROR, Script, StubOllama
except ImportError:  # tests/ imported as a package
    from tests.stub_ollama import BUSY_ERROR, Script, StubOllama

GEN = {"model": "stub-model", "prompt": "hello there"}


@pytest.fixture
def stub():
    with StubOllama() as s:
        yield s


def _lines(resp: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in resp.text.splitlines()]


def test_stream_generate_and_chat(stub):
    with httpx.Client(base_url=stub.url) as c:
        r = c.post("/api/generate", json=GEN)
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        assert r.headers["transfer-encoding"] == "chunked"
        chunks = _lines(r)
        assert len(chunks) == 17 and all(ch["response"] == "tok " and not ch["done"] for ch in chunks[:16])
        final = chunks[-1]
        assert final["done"] and final["done_reason"] == "stop" and final["eval_count"] == 16
        assert final["total_duration"] >= final["eval_duration"] > 0 and final["prompt_eval_count"] >= 1

        stub.configure(tokens=3, token_text=["a", "b"])
        r = c.post(
            "/api/chat",
            json={
                "model": "stub-model",
                "messages": [{"role": "user", "content": "x"}],
                "stream": False,
                "options": {"num_predict": 2},
            },
        )
        body = r.json()
        assert body["message"] == {"role": "assistant", "content": "ab"}
        assert body["done_reason"] == "length" and body["eval_count"] == 2
        chat = _lines(c.post("/api/chat", json={"model": "stub-model", "messages": [{"role": "user", "content": "x"}]}))
        assert [ch["message"]["content"] for ch in chat] == ["a", "b", "a", ""] and chat[-1]["eval_count"] == 3

        stub.configure(omit_eval_count=True)
        assert "eval_count" not in _lines(c.post("/api/generate", json=GEN))[-1]
    assert stub.request_count == 4 and stub.requests[0] == ("POST", "/api/generate", GEN)


def test_metadata_endpoints(stub):
    with httpx.Client(base_url=stub.url) as c:
        assert c.get("/").text == "Ollama is running" and c.head("/").status_code == 200
        assert c.get("/api/version").json() == {"version": "0.0.0-stub"}
        tags = c.get("/api/tags").json()["models"]
        assert [m["name"] for m in tags] == ["stub-model:latest"] and tags[0]["details"]["format"] == "gguf"
        assert c.get("/api/ps").json() == {"models": []}
        c.post("/api/generate", json=GEN)
        assert c.get("/api/ps").json()["models"][0]["context_length"] == 4096
        unload = c.post("/api/generate", json={"model": "stub-model", "keep_alive": 0}).json()
        assert unload["done"] and unload["done_reason"] == "unload" and c.get("/api/ps").json() == {"models": []}
        show = c.post("/api/show", json={"model": "stub-model"}).json()
        assert show["model_info"]["llama.attention.head_count_kv"] == 3
        missing = c.post("/api/show", json={"model": "x"})
        assert missing.status_code == 404 and missing.json() == {"error": "model 'x' not found"}
        r = c.post("/api/generate", json={"model": "x", "prompt": "p"})
        assert r.status_code == 404 and r.json() == {"error": 'model "x" not found, try pulling it first'}
        assert c.get("/nope").status_code == 404
        assert c.request("DELETE", "/api/delete", json={"model": "stub-model"}).status_code == 200
        assert c.request("DELETE", "/api/delete", json={"model": "stub-model"}).status_code == 404


def test_keepalive_and_connection_close(stub):
    with socket.create_connection(("127.0.0.1", stub.port)) as s:
        req = b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req + req[:-2] + b"Connection: close\r\n\r\n")  # two pipelined requests
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(b'{"version":"0.0.0-stub"}') == 2
    assert b"Connection: close" in data


def test_status_fault(stub):
    stub.configure(status=503)
    r = httpx.post(stub.url + "/api/generate", json=GEN)
    assert r.status_code == 503 and r.json() == {"error": BUSY_ERROR}
    stub.configure(status=500, error="boom")
    r = httpx.post(stub.url + "/api/chat", json={"model": "stub-model", "messages": []})
    assert r.status_code == 500 and r.json() == {"error": "boom"}


def test_disconnect_error_and_malformed(stub):
    stub.script = Script(tokens=5, disconnect_after=3)
    got = []
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", stub.url + "/api/generate", json=GEN) as r:
            got.extend(r.iter_lines())
    assert len(got) == 3

    stub.script = Script(tokens=5, error_after=2, error="oops")
    lines = httpx.post(stub.url + "/api/generate", json=GEN).text.splitlines()
    assert len(lines) == 3 and json.loads(lines[-1]) == {"error": "oops"}

    stub.script = Script(tokens=5, malformed_after=1)
    lines = httpx.post(stub.url + "/api/generate", json=GEN).text.splitlines()
    assert lines[1] == "{not json" and len(lines) == 7 and json.loads(lines[-1])["eval_count"] == 5


def test_delays_and_stall(stub):
    stub.script = Script(tokens=3, first_token_delay=0.1, token_delay=0.05)
    t0 = time.perf_counter()
    arrivals = []
    with httpx.stream("POST", stub.url + "/api/generate", json=GEN) as r:
        for _ in r.iter_lines():
            arrivals.append(time.perf_counter() - t0)
    # a token never goes out before its scheduled time (how late it goes is the stub's lateness figure)
    assert len(arrivals) == 4 and arrivals == sorted(arrivals)
    assert arrivals[0] >= 0.1 and arrivals[1] >= 0.15 and arrivals[2] >= 0.2
    record = stub.stats()["requests"][-1]
    assert record["tokens"] == 3 and record["first"] - record["rx"] >= 0.1 and record["last"] - record["rx"] >= 0.2

    stub.script = Script(tokens=5, stall_after=2)
    got = []
    with pytest.raises(httpx.ReadTimeout):
        with httpx.stream("POST", stub.url + "/api/generate", json=GEN, timeout=httpx.Timeout(5, read=0.2)) as r:
            got.extend(r.iter_lines())
    assert len(got) == 2
    # a stalled connection held open by a client must not block stop()
    s = socket.create_connection(("127.0.0.1", stub.port))
    s.sendall(b'POST /api/generate HTTP/1.1\r\nContent-Length: 36\r\n\r\n{"model":"stub-model","prompt":"hi"}')
    time.sleep(0.05)
    stopper = threading.Thread(target=stub.stop, daemon=True)
    stopper.start()
    stopper.join(30)  # only a bound against hanging: stop() must return while the stalled client holds on
    assert not stopper.is_alive()
    s.settimeout(1)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    assert data.count(b'"done":false') == 2
    s.close()


def test_script_time_zero_is_the_kernel_arrival_not_the_stubs_read(stub):
    """With the stub's loop busy for 60 ms when a request comes in, its first token still goes out 80 ms after
    the request arrived (a stub that started its clock when it got round to reading would send it at ~140 ms)."""
    stub.script = Script(tokens=2, first_token_delay=0.08, token_delay=0.01)
    with socket.create_connection(("127.0.0.1", stub.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the connection is accepted and read before the test
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(0.05)  # timestamping is switched on system-wide on a kernel work queue
        body = b'{"model":"stub-model","prompt":"hi"}'
        request = b"POST /api/generate HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        busy_until = []

        def busy() -> None:
            time.sleep(0.06)
            busy_until.append(time.perf_counter())

        stub._loop.call_soon_threadsafe(busy)
        time.sleep(0.005)  # the stub's loop is inside that sleep now
        t0 = time.perf_counter()
        s.sendall(request)
        s.settimeout(5)
        data = b""
        while b'"done":false' not in data:
            chunk = s.recv(65536)
            assert chunk, data  # the stub closed the connection before the first token
            data += chunk
        first = time.perf_counter() - t0
    record = stub.stats()["requests"][-1]
    # time zero is when the bytes arrived (after the send, before the stub's loop could read them: on Linux the
    # stub's monotonic clock is this process's perf_counter), and the first token is not written before 80 ms
    assert t0 <= record["rx"] < busy_until[0], (t0, record["rx"], busy_until)
    assert record["first"] - record["rx"] >= 0.08 and first >= 0.08
