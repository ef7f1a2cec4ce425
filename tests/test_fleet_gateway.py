"""The gateway over several hosts (protocol stubs for the faults and the timing): model-aware routing, the
breaker and retry-once before the first byte, /readyz and per-host metrics; then two replicas sharing Redis."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.fleet_helpers import generate, max_concurrency, metric, replica, run_parallel, upstreams
from tests.gateway_helpers import make_key
from tests.lifecycle_helpers import wait_for
from tests.stub_ollama import Script, StubOllama


@pytest.fixture
def stubs():
    with StubOllama(models=("m:1",)) as a, StubOllama(models=("m:1",)) as b:
        yield a, b


def infer_count(stub: StubOllama) -> int:
    return sum(1 for method, path, _ in stub.requests if path == "/api/generate")


def test_routes_by_model_and_prefers_a_loaded_one(isolated):
    with StubOllama(models=("a:1", "both:1")) as a, StubOllama(models=("b:1", "both:1"), loaded=("both:1",)) as b, \
            replica(isolated, upstreams=upstreams((a.url, 2), (b.url, 2))) as gw:
        assert [generate(gw.url, "b:1").status_code for _ in range(3)] == [200] * 3
        assert (infer_count(a), infer_count(b)) == (0, 3)  # only b has it
        assert generate(gw.url, "a").status_code == 404  # "a" means a:latest: on no host
        assert generate(gw.url, "a:1").status_code == 200
        assert (infer_count(a), infer_count(b)) == (1, 3)
        assert [generate(gw.url, "both:1").status_code for _ in range(3)] == [200] * 3
        assert (infer_count(a), infer_count(b)) == (1, 6)  # loaded on b: no cold load on a
        missing = generate(gw.url, "nowhere:1")
        assert missing.status_code == 404 and "not found on any upstream host" in missing.json()["error"]
        assert (infer_count(a), infer_count(b)) == (1, 6)  # a host without the model is never tried
        ready = httpx.get(gw.url + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["hosts"] == {a.url: True, b.url: True}
        assert metric(gw, "sollama_gateway_host_slots", host=a.url) == 2.0
        assert metric(gw, "sollama_gateway_host_up", host=b.url) == 1.0
        assert metric(gw, "sollama_gateway_host_loaded_model_bytes", host=b.url, model="both:1") == 250_000_000


def test_a_host_that_fails_before_the_first_byte_is_retried_elsewhere_and_ejected(isolated, stubs):
    a, b = stubs
    with replica(isolated, upstreams=upstreams((a.url, 2), (b.url, 2)), poll_interval=3600) as gw:
        a.configure(status=503)  # "server busy": a host failure
        first = generate(gw.url, "m:1")
        assert first.status_code == 200 and first.text.count('"done":true') == 1
        assert (infer_count(a), infer_count(b)) == (1, 1)
        assert metric(gw, "sollama_gateway_retries_total") == 1.0
        assert metric(gw, "sollama_gateway_host_up", host=a.url) == 0.0  # ejected
        assert [generate(gw.url, "m:1").status_code for _ in range(4)] == [200] * 4
        assert (infer_count(a), infer_count(b)) == (1, 5)  # nothing more went to a while it was out
        a.configure(status=None)
        # the breaker's probe (after its 1 s cooldown) puts a back; ties go to the first listed host again
        assert wait_for(lambda: httpx.get(gw.url + "/readyz", timeout=5).json()["hosts"][a.url], 30, 0.1)
        assert generate(gw.url, "m:1").status_code == 200
        assert infer_count(a) == 2
        assert metric(gw, "sollama_gateway_host_ejections_total", host=a.url) == 1.0


def test_a_stopped_host_mid_run_no_client_sees_a_5xx_and_it_is_used_again(isolated, stubs):
    a, b = stubs
    port = a.port
    with replica(isolated, upstreams=upstreams((a.url, 2), (b.url, 2)), poll_interval=3600) as gw:
        assert generate(gw.url, "m:1").status_code == 200 and infer_count(a) == 1
        a.stop()  # refuses connections now; the gateway has not polled it since
        codes = [generate(gw.url, "m:1").status_code for _ in range(5)]
        assert codes == [200] * 5 and infer_count(b) == 5
        assert metric(gw, "sollama_gateway_retries_total") == 1.0  # only the first found a down
        with StubOllama(models=("m:1",), port=port) as back:
            assert wait_for(lambda: httpx.get(gw.url + "/readyz", timeout=5).json()["hosts"][back.url], 30, 0.1)
            assert generate(gw.url, "m:1").status_code == 200
            assert infer_count(back) == 1


def test_a_failure_after_the_first_byte_is_not_replayed(isolated, stubs):
    a, b = stubs
    a.configure(tokens=6, disconnect_after=2)
    with replica(isolated, upstreams=upstreams((a.url, 2), (b.url, 2)), poll_interval=3600) as gw:
        resp = generate(gw.url, "m:1")
        assert resp.status_code == 200  # the head was already sent
        lines = [json.loads(x) for x in resp.text.splitlines() if x.strip()]
        assert "error" in lines[-1] and sum(1 for x in lines if x.get("response")) == 2
        assert (infer_count(a), infer_count(b)) == (1, 0)  # never replayed on b


def test_readyz_needs_one_host_up(isolated, stubs):
    a, b = stubs
    with replica(isolated, upstreams=upstreams((a.url, 1), (b.url, 1)), poll_interval=0.2) as gw:
        a.stop()
        assert wait_for(lambda: httpx.get(gw.url + "/readyz", timeout=5).json()["hosts"][a.url] is False, 30, 0.1)
        assert httpx.get(gw.url + "/readyz", timeout=5).status_code == 200
        b.stop()
        assert wait_for(lambda: httpx.get(gw.url + "/readyz", timeout=5).status_code == 503, 30, 0.1)
        resp = generate(gw.url, "m:1")
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"


# -- two replicas, shared state in Redis --------------------------------------------------------------------------

def test_rpm_limit_is_exact_across_two_replicas(isolated, stubs, redis_url):
    a, b = stubs
    secret = make_key(isolated, "team-a", "--rpm", "10")
    into_minute = time.time() % 60
    if into_minute > 40:  # one fixed window for the whole run
        time.sleep(60.5 - into_minute)
    cfg = {"upstreams": upstreams((a.url, 4), (b.url, 4)), "state": redis_url}
    with replica(isolated, **cfg) as r1, replica(isolated, **cfg) as r2:
        calls = [lambda gw=gw: generate(gw.url, "m:1", secret).status_code for gw in (r1, r2) for _ in range(15)]
        codes = run_parallel(calls)
    assert sorted(codes) == [200] * 10 + [429] * 20, codes
    assert infer_count(a) + infer_count(b) == 10


def test_per_host_in_flight_never_exceeds_slots_across_two_replicas(isolated, redis_url):
    script = Script(tokens=4, token_delay=0.05)
    with StubOllama(script, models=("m:1",)) as a, StubOllama(script, models=("m:1",)) as b:
        cfg = {"upstreams": upstreams((a.url, 2), (b.url, 3)), "state": redis_url}
        with replica(isolated, **cfg) as r1, replica(isolated, **cfg) as r2:
            calls = [lambda gw=gw: generate(gw.url, "m:1").status_code for gw in (r1, r2) for _ in range(16)]
            codes = run_parallel(calls)
        assert codes == [200] * 32
        peaks = [max_concurrency([(r["rx"], r["last"]) for r in s.stats()["requests"]]) for s in (a, b)]
        served = [len(s.stats()["requests"]) for s in (a, b)]
    assert sum(served) == 32 and min(served) > 0
    assert peaks == [2, 3]  # each host saturated, never beyond its slots (measured by the host itself)


def test_a_sigkilled_replicas_slots_come_back_within_the_lease_ttl(isolated, redis_url):
    with StubOllama(Script(tokens=3, stall_after=1), models=("m:1",)) as a:
        cfg = {"upstreams": upstreams((a.url, 2)), "state": redis_url, "lease_ttl": 2.0, "max_wait": 60}
        with replica(isolated, **cfg) as r1, replica(isolated, **cfg) as r2:
            stalled = run_parallel_background([lambda: generate(r1.url, "m:1", timeout=30) for _ in range(2)])
            assert wait_for(lambda: metric(r2, "sollama_gateway_host_in_flight", host=a.url) == 2.0, 30, 0.05)
            a.configure(stall_after=None)
            waiting = run_parallel_background([lambda: generate(r2.url, "m:1", timeout=60)])
            assert wait_for(lambda: httpx.get(r2.url + "/queue", timeout=5).json()["fleet_depth"] >= 1, 30, 0.05)
            assert infer_count(a) == 2  # r2's request waits: both slots are r1's
            r1.stop(sig=9)  # SIGKILL: r1 never releases its leases
            killed = time.monotonic()
            result = waiting.join()
            freed_after = time.monotonic() - killed
            stalled.join()
            assert result[0].status_code == 200 and result[0].text.count('"done":true') == 1
            assert infer_count(a) == 3
            print(f"\nslots of the SIGKILLed replica came back {freed_after:.2f} s after the kill (ttl 2 s)")


class run_parallel_background:  # noqa: N801 - reads like a function
    """`run_parallel` on a thread; `join()` returns its results."""

    def __init__(self, calls: list) -> None:
        import threading

        self.results: list = []
        self.thread = threading.Thread(target=lambda: self.results.extend(run_parallel(calls)))
        self.thread.start()

    def join(self, timeout: float = 120) -> list:
        self.thread.join(timeout)
        return self.results


def test_sigterm_refuses_requests_waiting_for_a_hosts_slot(isolated, redis_url):
    with StubOllama(Script(tokens=3, stall_after=1), models=("m:1",)) as a:
        cfg = {"upstreams": upstreams((a.url, 1)), "state": redis_url, "max_wait": 60}
        with replica(isolated, **cfg) as r1, replica(isolated, **cfg) as r2:
            holder = run_parallel_background([lambda: generate(r1.url, "m:1", timeout=10)])
            assert wait_for(lambda: metric(r2, "sollama_gateway_host_in_flight", host=a.url) == 1.0, 30, 0.05)
            waiting = run_parallel_background([lambda: generate(r2.url, "m:1", timeout=60)])
            assert wait_for(lambda: httpx.get(r2.url + "/queue", timeout=5).json()["fleet_depth"] >= 1, 30, 0.05)
            assert r2.stop() == 0  # SIGTERM: the waiting request is refused, nothing in flight, a clean exit
            refused = waiting.join()[0]
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert "server busy" in refused.json()["error"]
            assert infer_count(a) == 1  # it never reached the host
            a.stop()  # ends the stalled stream
            holder.join()


def test_listings_are_the_union_of_the_healthy_hosts_each_model_once(isolated):
    import ollama

    everything, bee = make_key(isolated, "all"), make_key(isolated, "bee", "--models", "b*")  # b:1 and both:1
    with StubOllama(models=("a:1", "both:1"), loaded=("both:1",)) as a, \
            StubOllama(models=("b:1", "both:1"), loaded=("both:1", "b:1")) as b, \
            replica(isolated, upstreams=upstreams((a.url, 2), (b.url, 2))) as gw:
        client = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {everything}"})
        assert sorted(m.model for m in client.list().models) == ["a:1", "b:1", "both:1"]
        assert sorted(m.model for m in client.ps().models) == ["b:1", "both:1"]  # both:1 once, though on 2 hosts
        v1 = httpx.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {everything}"}, timeout=10).json()
        assert v1["object"] == "list" and sorted(m["id"] for m in v1["data"]) == ["a:1", "b:1", "both:1"]

        mine = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {bee}"})
        assert sorted(m.model for m in mine.list().models) == ["b:1", "both:1"]
        assert sorted(m.model for m in mine.ps().models) == ["b:1", "both:1"]
        v1 = httpx.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {bee}"}, timeout=10).json()
        assert sorted(m["id"] for m in v1["data"]) == ["b:1", "both:1"]

        b.stop()  # a host that is down is left out; the others still answer
        assert sorted(m.model for m in client.list().models) == ["a:1", "both:1"]
        assert sorted(m.model for m in client.ps().models) == ["both:1"]
        assert wait_for(lambda: not httpx.get(gw.url + "/readyz", timeout=5).json()["hosts"][b.url], 30, 0.1)
        assert sorted(m.model for m in client.list().models) == ["a:1", "both:1"]


def _open_stream(gw_url: str, secret: str) -> tuple[httpx.Client, httpx.Response, object]:
    """A streamed generate left open after its first line (the caller closes it: a client that disconnects).
    The line iterator is returned too: dropping it would close the connection."""
    client = httpx.Client(timeout=30)
    resp = client.send(client.build_request("POST", gw_url + "/api/generate", json={"model": "m:1", "prompt": "hi"},
                                            headers={"Authorization": f"Bearer {secret}"}), stream=True)
    assert resp.status_code == 200, resp.read()
    lines = resp.iter_lines()
    assert '"done":false' in next(lines).replace(" ", "")
    return client, resp, lines


def test_key_concurrency_is_counted_across_replicas(isolated, redis_url):
    secret = make_key(isolated, "team-a", "--concurrency", "2")
    with StubOllama(Script(tokens=3, stall_after=1), models=("m:1",)) as a:
        cfg = {"upstreams": upstreams((a.url, 8)), "state": redis_url, "lease_ttl": 2.0}
        with replica(isolated, **cfg) as r1, replica(isolated, **cfg) as r2:
            held = [_open_stream(r1.url, secret), _open_stream(r2.url, secret)]  # one in flight on each replica
            for gw in (r1, r2):  # per replica each has 1 of 2; together the key is at its limit
                refused = generate(gw.url, "m:1", secret, timeout=30)
                assert refused.status_code == 429, refused.text
                assert "2 concurrent requests" in refused.json()["error"] and refused.headers["retry-after"] == "1"
            a.configure(stall_after=None)
            client, resp, _ = held.pop()
            resp.close()  # the caller on r2 disconnects mid-stream: its lease goes back
            client.close()
            assert wait_for(lambda: generate(r1.url, "m:1", secret).status_code == 200, 30, 0.1)
            # finished requests give their lease back: more in a row than the limit, all through
            assert [generate(gw.url, "m:1", secret).status_code for gw in (r1, r2, r1, r2)] == [200] * 4
            assert generate(r2.url, "m:1", secret).headers["ratelimit-remaining"] == "0"  # r1's stream holds 1
            assert infer_count(a) == 2 + 1 + 4 + 1  # refused requests never reached the host
            r1.stop(sig=9)  # SIGKILL: r1's stalled stream never releases its lease
            killed = time.monotonic()
            held[0][0].close()
            left = []  # RateLimit-Remaining on r2: 0 while r1's lease counts, 1 once it expired
            while time.monotonic() - killed < 30:
                resp = generate(r2.url, "m:1", secret)
                left.append((resp.status_code, resp.headers.get("ratelimit-remaining")))
                if left[-1] == (200, "1"):
                    break
                time.sleep(0.05)
            freed_after = time.monotonic() - killed
            assert left[0] == (200, "0") and left[-1] == (200, "1") and set(left) == {(200, "0"), (200, "1")}, left
            print(f"\nthe SIGKILLed replica's concurrency lease came back {freed_after:.2f} s after the kill (ttl 2 s)")
