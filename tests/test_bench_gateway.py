"""`sollama bench` through a real `sollama serve` subprocess: the key from --api-key or SOLLAMA_API_KEY reaches
every request as `Authorization: Bearer`, and without it the gateway refuses."""

from __future__ import annotations

import json

from tests.gateway_helpers import gateway, make_key


def test_bench_through_the_gateway_with_sollama_api_key(sollama, stub, isolated, monkeypatch):
    key = make_key(isolated, "bench")
    stub.configure(tokens=4)
    with gateway(stub.url, isolated) as gw:
        host = gw.url.removeprefix("http://")
        refused = sollama("--host", host, "bench", "-m", "stub-model", "-n", "2", "--warmup", "0", "--json")
        monkeypatch.setenv("SOLLAMA_API_KEY", key)
        ok = sollama("--host", host, "bench", "-m", "stub-model", "-n", "3", "--warmup", "0", "--json")
    log = gw.access_log()  # after the stop: the writer thread has flushed its batches
    assert refused.exit_code != 0, refused.output
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["summary"]["requests_ok"] == 3 and data["load"]["headers"] == ["Authorization"]
    assert stub.last_headers.get("authorization") is None  # the gateway does not pass the key upstream
    assert sum(1 for e in log if e.get("key") == "bench" and e.get("status") == 200) >= 3
    assert key not in ok.output


def test_bench_records_the_gateway_queue_wait_of_every_request(sollama, stub, isolated, monkeypatch):
    """slots=1 and concurrency 3: requests queue in the gateway; each reports its wait in X-Queue-Wait-Ms, which
    the bench stores per request and summarises. Straight to the stub the same figure is absent, and says so."""
    from ollama_ops.edges.store import Store

    monkeypatch.setenv("SOLLAMA_API_KEY", make_key(isolated, "bench"))
    stub.configure(tokens=4, token_delay=0.01)
    with gateway(stub.url, isolated, "--slots", "1") as gw:
        via = sollama("--host", gw.url.removeprefix("http://"), "bench", "-m", "stub-model", "-n", "9", "-c", "3",
                      "--warmup", "1", "--json")
    direct = sollama("--host", stub.host, "bench", "-m", "stub-model", "-n", "3", "--warmup", "0", "--json")
    assert via.exit_code == 0, via.output
    assert direct.exit_code == 0, direct.output
    data, plain = json.loads(via.stdout), json.loads(direct.stdout)
    wait = data["summary"]["gateway_queue"]
    assert wait["n"] == 9 and data["gateway_queue_absent"] is None  # the measured requests only
    with Store() as store:
        rows = store.requests(data["run_id"], include_warmup=True)
    assert len(rows) == 10 and all(r.gateway_queue_s is not None and r.gateway_queue_s >= 0 for r in rows)
    # one slot, three callers: most requests waited behind another (the gateway's whole-ms figure)
    assert sum(1 for r in rows if r.gateway_queue_s and r.gateway_queue_s > 0) >= 5
    assert wait["max"] == max(r.gateway_queue_s for r in rows if r.phase == "run")
    assert plain["summary"]["gateway_queue"] is None
    assert "X-Queue-Wait-Ms" in plain["gateway_queue_absent"]
    text = sollama("--host", stub.host, "bench", "-m", "stub-model", "-n", "1", "--warmup", "0")
    assert "gateway queue wait: absent" in text.stdout
    shown = sollama("report", str(data["run_id"]), "--json")
    assert json.loads(shown.stdout)["metrics"]["gateway_queue"]["n"] == 9


def test_bench_through_the_gateway_in_front_of_the_real_daemon(sollama, ollama, isolated, monkeypatch):
    """The real path: bench → sollama serve (one slot) → ollama serve with SmolLM2. Every request carries the
    gateway's queue wait next to Ollama's own breakdown; straight to the daemon the wait is absent."""
    from ollama_ops.edges.store import Store

    monkeypatch.setenv("SOLLAMA_API_KEY", make_key(isolated, "bench"))
    args = ("bench", "-m", ollama.model, "-n", "4", "-c", "2", "--warmup", "1", "--max-tokens", "8", "--json",
            "-o", "temperature=0")
    with gateway(ollama.url, isolated, "--slots", "1") as gw:
        via = sollama("--host", gw.url.removeprefix("http://"), *args)
    direct = sollama("--host", ollama.host, *args)
    assert via.exit_code == 0, via.output
    assert direct.exit_code == 0, direct.output
    data, plain = json.loads(via.stdout), json.loads(direct.stdout)
    assert data["summary"]["gateway_queue"]["n"] == 4 and data["summary"]["breakdown"] is not None
    with Store() as store:
        rows = store.requests(data["run_id"], include_warmup=True)
    assert [r.phase for r in rows] == ["warmup"] + ["run"] * 4
    assert all(r.gateway_queue_s is not None for r in rows) and all(r.ok for r in rows)
    assert plain["summary"]["gateway_queue"] is None and plain["gateway_queue_absent"]
