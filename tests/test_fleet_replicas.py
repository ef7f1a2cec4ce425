"""Two gateway replicas with keys and usage in a real PostgreSQL and shared state in a real Redis: a key revoked
with `sollama keys` is refused by both; `report --usage` reads every replica's usage; `status --fleet`."""

from __future__ import annotations

import json
import time

import httpx

from tests.fleet_helpers import cli, generate, replica, upstreams
from tests.stub_ollama import StubOllama


def test_a_revoked_key_is_refused_by_every_replica_and_usage_is_shared(isolated, redis_url, postgres_url):
    shared = {"store": postgres_url, "state": redis_url}
    made = cli(isolated, "keys", "create", "team-a", **shared)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert not (isolated / "data" / "gateway-keys.json").exists()  # the key went to PostgreSQL
    with StubOllama(models=("m:1",)) as a:
        cfg = {"upstreams": upstreams((a.url, 2)), **shared}
        with replica(isolated, **cfg) as r1, replica(isolated, **cfg) as r2:
            assert [generate(gw.url, "m:1", secret).status_code for gw in (r1, r2, r1, r2)] == [200] * 4
            revoked = cli(isolated, "keys", "revoke", "team-a", **shared)  # like an admin on another machine
            assert revoked.returncode == 0, revoked.stderr
            t0 = time.monotonic()
            codes = []
            deadline = t0 + 10
            while time.monotonic() < deadline:
                codes.append(generate(r2.url, "m:1", secret).status_code)
                if codes[-1] == 401:
                    break
            refused_after = time.monotonic() - t0
            assert codes[-1] == 401 and set(codes) <= {200, 401}
            assert generate(r1.url, "m:1", secret).status_code == 401
            assert generate(r2.url, "m:1", secret).status_code == 401  # and it stays refused
            print(f"\nrevoked key refused by replica 2 {refused_after * 1000:.0f} ms after `sollama keys revoke` "
                  f"returned ({len(codes) - 1} request(s) got through meanwhile)")
            served = 4 + codes.count(200)
    # both replicas stopped with SIGTERM: their batches are flushed
    report = cli(isolated, "report", "--usage", "--json", **shared)
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert doc["requests"] == served  # refused requests (401) are not usage
    assert [(m["model"], m["requests"]) for m in doc["models"]] == [("m:1", served)]


def test_status_fleet_shows_hosts_and_replicas(isolated, redis_url, sollama, monkeypatch):
    with StubOllama(models=("m:1", "n:1"), loaded=("m:1",)) as a, StubOllama(models=("n:1",)) as b:
        cfg = {"upstreams": upstreams((a.url, 2), (b.url, 3)), "state": redis_url}
        with replica(isolated, **cfg) as r1:
            monkeypatch.setenv("SOLLAMA_GATEWAY_UPSTREAMS", cfg["upstreams"])
            monkeypatch.setenv("SOLLAMA_GATEWAY_STATE", redis_url)
            result = sollama("status", "--fleet", "--json")
            assert result.exit_code == 0, result.output
            doc = json.loads(result.stdout)
            assert [(h["url"], h["up"], h["version"], h["slots"], h["in_flight"], h["installed"]) for h in
                    doc["hosts"]] == [(a.url, True, "0.0.0-stub", 2, 0, 2), (b.url, True, "0.0.0-stub", 3, 0, 1)]
            assert [(m["name"], m["size"]) for m in doc["hosts"][0]["loaded"]] == [("m:1", 250_000_000)]
            assert 0 < doc["hosts"][0]["loaded"][0]["expires_in_s"] <= 300
            assert [(r["address"], r["pid"], r["queued"]) for r in doc["replicas"]] == [(r1.url, r1.proc.pid, 0)]
            assert doc["queue_depth"] == 0 and doc["state"] == "redis"
            text = sollama("status", "--fleet")
            assert text.exit_code == 0 and "2/2 hosts up" in text.stdout and r1.url in text.stdout
            b.stop()
            down = sollama("status", "--fleet")
            assert down.exit_code == 7, down.output
            assert "1/2 hosts up" in down.stdout and "1 of 2 upstream hosts down" in down.stderr
        a.stop()
        gone = sollama("status", "--fleet", "--json")
        assert gone.exit_code == 4 and json.loads(gone.stdout)["replicas"] == []


def test_fleet_config_is_checked(isolated, sollama, monkeypatch):
    monkeypatch.setenv("SOLLAMA_GATEWAY_UPSTREAMS", "http://127.0.0.1:1 slots=0")
    bad = sollama("serve")
    assert bad.exit_code == 3 and "slots must be 1-1024" in bad.stderr
    monkeypatch.setenv("SOLLAMA_GATEWAY_UPSTREAMS", "http://127.0.0.1:1,127.0.0.1:1")
    assert "listed twice" in sollama("serve").stderr
    monkeypatch.setenv("SOLLAMA_GATEWAY_UPSTREAMS", "http://127.0.0.1:1")
    monkeypatch.setenv("SOLLAMA_GATEWAY_STATE", "memcached://x")
    bad = sollama("serve")
    assert bad.exit_code == 3 and "gateway.state must start with redis://" in bad.stderr


def test_readyz_of_a_replica_lists_hosts(isolated, redis_url):
    with StubOllama(models=("m:1",)) as a:
        with replica(isolated, upstreams=upstreams((a.url, 1)), state=redis_url) as r1:
            body = httpx.get(r1.url + "/readyz", timeout=5).json()
            assert body == {"status": "ready", "hosts": {a.url: True}, "hosts_up": 1, "draining": False}
            banner = r1.output()
            assert f"→ {a.url} (1 slot)" in banner and f"state {redis_url} · store keys file + SQLite" in banner
