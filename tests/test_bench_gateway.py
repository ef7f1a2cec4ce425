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
