"""`sollama status` with a gateway: the gateway section (address, upstream, in flight, queue depth, keys) from a
real `sollama serve` subprocess, in the human view and in `--json`, with and without an admin key."""

from __future__ import annotations

import concurrent.futures
import json

import httpx

from tests.conftest import free_port
from tests.gateway_helpers import gateway, make_key, wait_queue_depth


def _status(sollama, stub, gw_url: str, *args: str, env: dict | None = None):
    port = gw_url.rsplit(":", 1)[1]
    return sollama("--host", stub.url, "status", *args,
                   env={"SOLLAMA_GATEWAY_LISTEN": f"127.0.0.1:{port}", **(env or {})})


def test_status_json_carries_the_gateway_with_in_flight_and_queue(sollama, stub, isolated):
    admin = make_key(isolated, "ops", "--admin")
    user = make_key(isolated, "ci")
    make_key(isolated, "old")
    assert sollama("keys", "revoke", "old").exit_code == 0
    stub.configure(tokens=1, first_token_delay=3.0)
    with gateway(stub.url, isolated, slots=1) as gw, concurrent.futures.ThreadPoolExecutor(2) as pool:
        body = {"model": "stub-model", "prompt": "hi", "stream": False}
        calls = [pool.submit(httpx.post, gw.url + "/api/generate", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {user}"}) for _ in range(2)]
        assert wait_queue_depth(gw, 1, key=admin)
        r = _status(sollama, stub, gw.url, "--json", "--api-key", admin)
        doc = json.loads(r.stdout)
        g = doc["gateway"]
        assert r.exit_code == 0, r.stderr
        assert g["address"] == gw.url and g["upstream"] == stub.url and g["running"] is True
        assert (g["slots"], g["in_flight"], g["queue_depth"], g["view"]) == (1, 1, 1, "admin")
        assert g["oldest_wait_s"] > 0 and g["draining"] is False and g["uptime_s"] > 0
        assert (g["keys"], g["keys_total"], g["error"]) == (2, 3, None)
        human = _status(sollama, stub, gw.url, env={"SOLLAMA_API_KEY": admin})
        assert [c.result().status_code for c in calls] == [200, 200]
    assert human.exit_code == 0, human.stderr
    line = " ".join(human.stdout.split()).split("gateway ", 1)[1]  # one logical row, however it wraps
    assert f"{gw.url} → {stub.url}" in line and "1/1 in flight, 1 queued" in line and "2 keys (1 revoked" in line


def test_status_gateway_views_by_key(sollama, stub, isolated):
    user = make_key(isolated, "ci")
    with gateway(stub.url, isolated) as gw:
        anon = json.loads(_status(sollama, stub, gw.url, "--json").stdout)["gateway"]
        mine = json.loads(_status(sollama, stub, gw.url, "--json", env={"SOLLAMA_API_KEY": user}).stdout)["gateway"]
    assert anon["running"] is True and anon["in_flight"] is None and "pass an API key" in anon["error"]
    assert (mine["view"], mine["in_flight"], mine["queue_depth"], mine["error"]) == ("key", 0, 0, None)


def test_status_through_the_gateway_with_api_key(sollama, stub, isolated):
    """`--host` the gateway: /api/version, /api/ps, /api/tags go through it with the key."""
    user = make_key(isolated, "ci")
    with gateway(stub.url, isolated) as gw:
        refused = sollama("--host", gw.url, "status", "--json")
        ok = sollama("--host", gw.url, "status", "--json", "--api-key", user)
    assert refused.exit_code in (4, 7) and json.loads(refused.stdout)["installed"] is None, refused.stdout
    doc = json.loads(ok.stdout)
    assert ok.exit_code == 0 and doc["reachable"] is True and doc["installed"]["count"] >= 1, ok.stdout


def test_configured_gateway_not_running_and_none_configured(sollama, stub):
    port = free_port()
    down = sollama("--host", stub.url, "status", "--json", env={"SOLLAMA_GATEWAY_LISTEN": f"127.0.0.1:{port}"})
    g = json.loads(down.stdout)["gateway"]
    assert down.exit_code == 0 and g["running"] is False and g["address"] == f"http://127.0.0.1:{port}"
    assert "does not answer" in g["error"]
    none = sollama("--host", stub.url, "status", "--json")
    assert none.exit_code == 0 and json.loads(none.stdout)["gateway"] is None or _port_8000_busy()


def _port_8000_busy() -> bool:
    try:
        httpx.get("http://127.0.0.1:8000/healthz", timeout=0.5)
        return True
    except httpx.HTTPError:
        return False
