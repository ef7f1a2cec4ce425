"""The gateway as a real `sollama serve` subprocess in front of the protocol stub: every error over real `curl`,
the fair queue, queue bounds, disconnects while queued, the fault matrix, drain on SIGTERM, metrics and logs."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import sqlite3
import subprocess
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.gateway_helpers import curl, env_for, gateway, make_key, sollama_argv, wait_queue_depth
from tests.lifecycle_helpers import wait_for
from tests.stub_ollama import BUSY_ERROR, Script, StubOllama

GEN = "/api/generate"


def _arrived(stub, prompt: str) -> bool:
    return any(p == GEN and isinstance(b, dict) and b.get("prompt") == prompt for _, p, b in stub.requests)


def _gen(prompt: str = "hi", **kw) -> dict:
    return {"model": "stub-model", "prompt": prompt, **kw}


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "gw-home"
    path.mkdir()
    return path


@pytest.fixture
def two_model_stub():
    with StubOllama(Script(tokens=3), models=("stub-model", "other-model:7b")) as server:
        yield server


# -- the happy path and the wire format ------------------------------------------------------------------------------

def test_streams_ndjson_through_unchanged(stub, home):
    stub.configure(tokens=3, token_text=["héllo ", "\"q\" ", "\\n\n"])
    with gateway(stub.url, home) as gw:
        r = curl(gw.url + GEN, "-H", "X-Request-ID: trace-42", data=_gen())
        direct = curl(stub.url + GEN, data=_gen())
    assert r.status == 200 and r.headers["content-type"] == "application/x-ndjson", (r, gw.output())
    assert r.headers["x-request-id"] == "trace-42" and r.headers["x-queue-wait-ms"] == "0"
    lines, want = [json.loads(x) for x in r.body.splitlines()], [json.loads(x) for x in direct.body.splitlines()]
    assert [x.get("response") for x in lines] == ["héllo ", "\"q\" ", "\\n\n", ""]
    assert [x.get("response") for x in lines] == [x.get("response") for x in want]
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 3


def test_non_streamed_json_and_metadata_routes(stub, home):
    with gateway(stub.url, home) as gw:
        r = curl(gw.url + GEN, data=_gen(stream=False))
        tags = curl(gw.url + "/api/tags")
        version = curl(gw.url + "/api/version")
        openapi = curl(gw.url + "/openapi.json").json()
        show = curl(gw.url + "/api/show", data={"model": "stub-model"})
    assert r.status == 200 and r.json()["response"] == "tok " * 16 and r.json()["eval_count"] == 16
    assert [m["name"] for m in tags.json()["models"]] == ["stub-model:latest"]
    assert version.status == 200 and version.json() == {"version": "0.0.0-stub"}
    assert show.status == 200 and show.json()["details"]["family"] == "llama"
    assert {"/api/generate", "/v1/chat/completions", "/healthz", "/metrics", "/queue"} <= set(openapi["paths"])
    assert "post" in openapi["paths"]["/api/chat"] and "delete" in openapi["paths"]["/api/delete"]


# -- every error, in the caller's dialect, over curl -----------------------------------------------------------------

def test_errors_in_both_dialects(two_model_stub, home):
    stub = two_model_stub
    alice = make_key(home, "alice", "--models", "stub*", "--rpm", "3")
    admin = make_key(home, "root", "--admin")
    revoked = make_key(home, "gone")
    short = make_key(home, "short", "--expires", "1s")
    assert subprocess.run([*sollama_argv(), "keys", "revoke", "gone"], env=env_for(home),
                          capture_output=True, timeout=60).returncode == 0
    time.sleep(1.1)  # the short key expires
    with gateway(stub.url, home, body_limit=2048) as gw:
        bearer = ["-H", f"Authorization: Bearer {alice}"]
        # 401: the same answer for no key, a wrong key, a revoked key and an expired key
        answers = [curl(gw.url + GEN, *hdr, data=_gen()) for hdr in
                   ([], ["-H", "Authorization: Bearer sk-sollama-wrong"], ["-H", f"X-API-Key: {revoked}"],
                    ["-H", f"X-API-Key: {short}"])]
        assert {a.status for a in answers} == {401}
        assert {a.body for a in answers} == {'{"error": "invalid or missing API key"}'}
        assert answers[0].headers["www-authenticate"] == "Bearer"
        v1 = curl(gw.url + "/v1/chat/completions", data={"model": "stub-model", "messages": []})
        assert v1.status == 401 and v1.json()["error"]["type"] == "authentication_error"
        # 403: a model outside the key's patterns, in /api and in a /v1 body; an admin route
        r = curl(gw.url + GEN, *bearer, data={"model": "other-model:7b", "prompt": "x"})
        assert r.status == 403 and r.json() == {"error": "this key may not use model 'other-model:7b'"}
        r = curl(gw.url + "/v1/chat/completions", *bearer, data={"model": "other-model:7b", "messages": []})
        assert r.status == 403 and r.json()["error"]["code"] == "forbidden"
        r = curl(gw.url + "/api/pull", *bearer, data={"model": "stub-model"})
        assert r.status == 403 and "admin only" in r.json()["error"]
        r = curl(gw.url + "/api/delete", "-X", "DELETE", "-H", f"X-API-Key: {admin}", data={"model": "nope"})
        assert r.status == 404  # an admin passes; Ollama's own answer comes back
        # listings only show what the key may use
        assert [m["name"] for m in curl(gw.url + "/api/tags", *bearer).json()["models"]] == ["stub-model:latest"]
        assert len(curl(gw.url + "/api/tags", "-H", f"X-API-Key: {admin}").json()["models"]) == 2
        # 413
        r = curl(gw.url + GEN, *bearer, data=_gen("x" * 3000))
        assert r.status == 413 and "over the limit of 2048 bytes" in r.json()["error"]
        # 404 / 405 on paths outside the allow-list
        assert curl(gw.url + "/api/nope", *bearer, data={}).status == 404
        assert curl(gw.url + GEN, *bearer).status == 405
        assert curl(gw.url + "/api/../../etc/passwd", "--path-as-is", *bearer).status == 404
        # 429 after exactly 3 requests in the minute, with the headers
        ok = [curl(gw.url + GEN, *bearer, data=_gen(stream=False)) for _ in range(3)]
        assert [r.status for r in ok] == [200, 200, 200]
        assert [r.headers["ratelimit-remaining"] for r in ok] == ["2", "1", "0"]
        r = curl(gw.url + GEN, *bearer, data=_gen(stream=False))
        assert r.status == 429 and r.headers["ratelimit-limit"] == "3" and r.headers["ratelimit-remaining"] == "0"
        assert 1 <= int(r.headers["retry-after"]) <= 60 and "3 requests per minute" in r.json()["error"]
        r = curl(gw.url + "/v1/completions", *bearer, data={"model": "stub-model", "prompt": "x"})
        assert r.status == 429 and r.json()["error"]["type"] == "rate_limit_error"
        # request ids: a bad one is replaced, a good one echoed
        r = curl(gw.url + "/api/tags", *bearer, "-H", 'X-Request-ID: bad "id"')
        assert r.status == 200 and len(r.headers["x-request-id"]) == 24 and '"' not in r.headers["x-request-id"]
    log = gw.access_log()
    assert all(alice not in json.dumps(e) and admin not in json.dumps(e) for e in log)
    assert {e["status"] for e in log} >= {200, 401, 403, 404, 405, 413, 429}
    assert all("prompt" not in e for e in log)  # no prompt text unless log_prompts


def test_upstream_unreachable_is_502_and_slow_head_is_504(stub, home):
    with gateway(f"127.0.0.1:{free_port()}", home) as gw:
        r = curl(gw.url + GEN, data=_gen())
        assert r.status == 502 and "unreachable" in r.json()["error"]
        r = curl(gw.url + "/v1/embeddings", data={"model": "m", "input": "x"})
        assert r.status == 502 and r.json()["error"]["code"] == "upstream_unreachable"
        assert curl(gw.url + "/readyz").status == 503
        assert curl(gw.url + "/healthz").status == 200
    stub.configure(tokens=3, token_delay=2.0)  # a non-streamed answer's head comes after all tokens
    with gateway(stub.url, home, first_byte_timeout=0.3) as gw:
        r = curl(gw.url + GEN, data=_gen(stream=False))
        assert r.status == 504 and "no answer from Ollama within 0.3 s" in r.json()["error"]


# -- the queue ---------------------------------------------------------------------------------------------------

def _stream_in_thread(pool, url, body, headers=None):
    def go():
        with httpx.stream("POST", url, json=body, headers=headers or {}, timeout=60) as resp:
            return resp.status_code, dict(resp.headers), resp.read().decode()
    return pool.submit(go)


def test_queue_full_and_max_wait_give_503_with_retry_after(stub, home):
    stub.configure(tokens=2, stall_after=0)  # the first request holds the one slot
    with gateway(stub.url, home, "--slots", "1", queue_depth=1, max_wait=1.0, drain_timeout=1) as gw, \
            concurrent.futures.ThreadPoolExecutor(4) as pool:
        holder = _stream_in_thread(pool, gw.url + GEN, _gen("hold"))
        assert wait_for(lambda: _arrived(stub, "hold"), 20)
        queued = _stream_in_thread(pool, gw.url + GEN, _gen("queued"))
        assert wait_queue_depth(gw, 1)
        full = curl(gw.url + GEN, data=_gen("full"))
        assert full.status == 503 and full.json() == {"error": BUSY_ERROR} and full.headers["retry-after"] == "1"
        v1 = curl(gw.url + "/v1/chat/completions", data={"model": "stub-model", "messages": []})
        assert v1.status == 503 and v1.json()["error"]["code"] == "server_busy"
        status, headers, body = queued.result(30)  # max wait passes
        assert status == 503 and headers["retry-after"] == "1" and json.loads(body) == {"error": BUSY_ERROR}
        assert gw.stop() == 0  # the stalled holder is cut after the drain timeout
        with pytest.raises(httpx.HTTPError):
            holder.result(30)
    prompts = [b.get("prompt") for _, p, b in stub.requests if p == GEN]
    assert prompts == ["hold"]  # nothing refused reached the upstream


def test_disconnect_while_queued_sends_nothing_upstream(stub, home):
    stub.configure(tokens=2, stall_after=0)
    with gateway(stub.url, home, "--slots", "1", drain_timeout=1) as gw:
        holder = socket.create_connection(("127.0.0.1", gw.port))
        body = json.dumps(_gen("hold")).encode()
        holder.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert wait_for(lambda: _arrived(stub, "hold"), 20)
        leaver = socket.create_connection(("127.0.0.1", gw.port))
        body = json.dumps(_gen("leaves")).encode()
        leaver.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert wait_queue_depth(gw, 1)
        leaver.close()
        assert wait_for(lambda: httpx.get(gw.url + "/queue").json()["depth"] == 0, 20)
        holder.close()  # the stalled request's caller leaves too: its upstream request is closed, the slot freed
        stub.configure(tokens=2, stall_after=None)
        r = curl(gw.url + GEN, data=_gen("after", stream=False))
        assert r.status == 200
    prompts = [b.get("prompt") for _, p, b in stub.requests if p == GEN]
    assert prompts == ["hold", "after"]
    statuses = {e.get("request_id"): e["status"] for e in gw.access_log()}
    assert sorted(statuses.values()) == [200, 499, 499]


def test_fair_queue_a_flood_does_not_starve_a_trickle(home):
    import asyncio

    import aiohttp

    script = Script(tokens=2, first_token_delay=0.01, token_delay=0.005)
    with StubOllama(script) as stub:
        a_key, b_key = make_key(home, "flood"), make_key(home, "trickle")
        with gateway(stub.url, home, "--slots", "1") as gw:
            async def main() -> None:
                async with aiohttp.ClientSession() as session:
                    async def one(key: str, prompt: str) -> int:
                        async with session.post(gw.url + GEN, json=_gen(prompt, stream=False),
                                                headers={"X-API-Key": key}) as resp:
                            await resp.read()
                            return resp.status
                    flood = [asyncio.ensure_future(one(a_key, f"A{i}")) for i in range(40)]
                    for _ in range(400):  # until most of the flood waits in the gateway's queue
                        async with session.get(gw.url + "/queue", headers={"X-API-Key": a_key}) as q:
                            if (await q.json())["depth"] >= 30:
                                break
                        await asyncio.sleep(0.02)
                    for i in range(5):  # B: one at a time
                        assert await one(b_key, f"B{i}") == 200
                    assert set(await asyncio.gather(*flood)) == {200}
            asyncio.run(main())
    order = [b["prompt"] for _, p, b in stub.requests if p == GEN]
    assert len(order) == 45
    b_at = [order.index(f"B{i}") for i in range(5)]
    gaps = [sum(1 for x in order[b_at[i] + 1:b_at[i + 1]] if x.startswith("A")) for i in range(4)]
    # B waits for about one A request each time (the one in flight, plus at most one served meanwhile), not 30+
    assert all(g <= 2 for g in gaps), (gaps, order)
    assert b_at[4] < 20, order


# -- faults upstream -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault, status, last_error", [
    ({"status": 500, "error": "llama runner crashed"}, 500, None),
    ({"status": 503}, 503, None),
    ({"disconnect_after": 2}, 200, "the connection to Ollama broke mid-response"),
    ({"stall_after": 1}, 200, "Ollama sent nothing for 0.5 s; the stream was stopped"),
    ({"malformed_after": 1}, 200, "Ollama sent a malformed line; the stream was stopped"),
    ({"error_after": 1, "error": "out of memory"}, 200, "out of memory"),
])
def test_fault_matrix(stub, home, fault, status, last_error):
    stub.configure(tokens=4, **fault)
    with gateway(stub.url, home, idle_timeout=0.5) as gw:
        r = curl(gw.url + GEN, data=_gen())
        assert r.status == status
        if status >= 400:
            assert set(r.json()) == {"error"} and r.json()["error"] == (fault.get("error") or BUSY_ERROR)
            assert (r.headers.get("retry-after") == "1") is (status == 503)
        else:
            lines = [json.loads(x) for x in r.body.splitlines()]
            assert lines[-1] == {"error": last_error}
            assert not any(x.get("done") for x in lines)
        stub.configure(tokens=2, **{k: None for k in fault})  # the gateway keeps serving
        ok = curl(gw.url + GEN, data=_gen(stream=False))
        assert ok.status == 200 and ok.json()["done"] is True
        assert curl(gw.url + "/healthz").status == 200
    assert "Traceback" not in gw.output()


# -- SIGTERM drain ------------------------------------------------------------------------------------------------

def test_sigterm_503s_the_queued_finishes_the_in_flight_and_exits_0(stub, home):
    stub.configure(tokens=20, token_delay=0.1)
    with gateway(stub.url, home, "--slots", "1", drain_timeout=30) as gw, \
            concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = _stream_in_thread(pool, gw.url + GEN, _gen("running"))
        assert wait_for(lambda: _arrived(stub, "running"), 20)
        queued = _stream_in_thread(pool, gw.url + GEN, _gen("queued"))
        assert wait_queue_depth(gw, 1)
        code = gw.stop(signal.SIGTERM)
        status, _, body = queued.result(30)
        assert status == 503 and json.loads(body) == {"error": BUSY_ERROR}
        status, _, body = running.result(30)
        lines = [json.loads(x) for x in body.splitlines()]
        assert status == 200 and lines[-1]["done"] is True and len(lines) == 21
    assert code == 0, gw.output()
    assert "Traceback" not in gw.output()


# -- metrics, access log, usage -------------------------------------------------------------------------------------

def test_metrics_access_log_and_usage(stub, home, sollama):
    admin = make_key(home, "ops", "--admin")
    user = make_key(home, "app")
    stub.configure(tokens=3)
    with gateway(stub.url, home, metrics_token="scrape-me", log_prompts="true") as gw:
        for _ in range(2):
            assert curl(gw.url + GEN, "-H", f"X-API-Key: {user}", data=_gen("secret prompt")).status == 200
        assert curl(gw.url + "/metrics").status == 401
        assert curl(gw.url + "/metrics", "-H", f"X-API-Key: {user}").status == 403
        assert curl(gw.url + "/metrics", "-H", "Authorization: Bearer scrape-me").status == 200
        text = curl(gw.url + "/metrics", "-H", f"X-API-Key: {admin}").body
        mine = curl(gw.url + "/queue", "-H", f"X-API-Key: {user}").json()
        everyone = curl(gw.url + "/queue", "-H", f"X-API-Key: {admin}").json()
    assert 'sollama_gateway_requests_total{code="200",key="app",model="stub-model",route="/api/generate"} 2.0' in text
    assert 'sollama_gateway_tokens_total{key="app",kind="output",model="stub-model"} 6.0' in text
    assert 'sollama_gateway_tokens_total{key="app",kind="prompt",model="stub-model"}' in text
    for name in ("sollama_gateway_request_duration_seconds_bucket", "sollama_gateway_ttft_seconds_bucket",
                 "sollama_gateway_queue_wait_seconds_bucket", "sollama_gateway_queue_depth 0.0",
                 "sollama_gateway_in_flight 0.0", f'sollama_gateway_upstream_up{{upstream="{stub.url}"}} 1.0'):
        assert name in text, name
    assert set(mine) == {"slots", "in_flight", "depth", "draining", "yours"}
    assert {"by_key", "by_model", "oldest_wait_s", "waiting"} <= set(everyone)
    gens = [e for e in gw.access_log() if e["route"] == GEN]
    assert len(gens) == 2 and all(e["key"] == "app" and e["output_tokens"] == 3 for e in gens)
    assert all(e["prompt"] == "secret prompt" and e["ttft_ms"] is not None for e in gens)
    assert len({e["request_id"] for e in gens}) == 2
    assert (home / "state" / "logs" / "gateway.log").stat().st_mode & 0o777 == 0o600
    db = home / "data" / "history.sqlite3"
    assert db.stat().st_mode & 0o777 == 0o600
    rows = sqlite3.connect(db).execute("SELECT command, key, model, eval_tokens, outcome FROM usage").fetchall()
    assert rows == [("gateway", "app", "stub-model", 3, "ok")] * 2

    env = {"SOLLAMA_HOME": str(home)}
    shown = sollama("logs", "--gateway", "-n", "1", env=env)
    assert shown.exit_code == 0, shown.output
    last = json.loads(shown.stdout.strip().splitlines()[-1])
    assert last["route"] == "/api/generate" and last["key"] == "app"
    by_key = sollama("report", "--usage", "--by", "key", "--json", env=env)
    assert by_key.exit_code == 0, by_key.output
    doc = json.loads(by_key.stdout)
    assert doc["by"] == "key" and [(m["group"], m["requests"], m["eval_tokens"]) for m in doc["models"]] == [
        ("app", 2, 6)]
    by_day = sollama("report", "--usage", "--by", "day", env=env)
    assert by_day.exit_code == 0 and "DAY" in by_day.stdout and "stub-model" in by_day.stdout
    assert sollama("report", "--usage", "--by", "week", env=env).exit_code == 2


def test_cli_commands_through_the_gateway_with_a_key(stub, home, sollama, monkeypatch):
    key = make_key(home, "cli", "--models", "stub*")
    stub.configure(tokens=3, token_text="hey ")
    with gateway(stub.url, home) as gw:
        host = gw.url.removeprefix("http://")
        ok = sollama("--host", host, "generate", "-m", "stub-model", "--api-key", key, "hi")
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.startswith("hey hey hey")
        refused = sollama("--host", host, "generate", "-m", "stub-model", "hi")
        assert refused.exit_code == 1 and "invalid or missing API key" in refused.stderr
        listed = sollama("--host", host, "models", "list", "--json", "--api-key", key)
        assert listed.exit_code == 0, listed.output
        assert [m["name"] for m in json.loads(listed.stdout)["models"]] == ["stub-model:latest"]
        monkeypatch.setenv("SOLLAMA_API_KEY", key)
        via_env = sollama("--host", host, "generate", "-m", "stub-model", "hi")
        assert via_env.exit_code == 0 and via_env.stdout.startswith("hey")
    assert {e["key"] for e in gw.access_log() if e["status"] == 200} == {"cli"}


def test_cors_preflight_for_a_configured_origin(stub, home):
    with gateway(stub.url, home, cors_origins="https://app.example") as gw:
        ok = curl(gw.url + GEN, "-X", "OPTIONS", "-H", "Origin: https://app.example",
                  "-H", "Access-Control-Request-Method: POST", "-H", "Access-Control-Request-Headers: x-api-key")
        other = curl(gw.url + GEN, "-X", "OPTIONS", "-H", "Origin: https://evil.example",
                     "-H", "Access-Control-Request-Method: POST")
    assert ok.status == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-credentials" not in ok.headers
    assert other.status == 400 and "access-control-allow-origin" not in other.headers
