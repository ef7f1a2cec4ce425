"""`/metrics` of `sollama serve --workers N` shows the whole gateway: requests spread over both workers (the access
log's `pid` names each one) are all counted by one scrape, whichever worker answers it; the metric names and labels
are the single process's (no `pid` label); the workers' files live in a private directory that is gone after."""

from __future__ import annotations

import stat

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.fleet_helpers import generate, run_parallel
from tests.gateway_helpers import gateway
from tests.lifecycle_helpers import wait_for
from tests.stub_ollama import Script, StubOllama

N = 30


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """sample name → [(labels, value)], from one scrape on a new connection."""
    response = httpx.get(url + "/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=30)
    assert response.status_code == 200, response.text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _series(samples) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    return {name: set().union(*(set(labels) for labels, _ in values)) for name, values in samples.items()}


def _total(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == w for k, w in labels.items()))


def test_one_scrape_counts_the_requests_of_every_worker(isolated, redis_url):
    with StubOllama(Script(tokens=3), models=("m:1",)) as stub:
        with gateway(stub.url, isolated, "--workers", "2", "--slots", "4", state=redis_url,
                     metrics_token="scrape-me") as gw:
            assert wait_for(lambda: "sollama gateway on" in gw.output(), 60, 0.05), gw.output()
            workers = [p.pid for p in psutil.Process(gw.proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
            assert len(workers) == 2
            files = isolated / "state" / "gateway-metrics" / f"127.0.0.1_{gw.port}"
            assert stat.S_IMODE(files.stat().st_mode) == 0o700
            codes = run_parallel([lambda: generate(gw.url, "m:1").status_code for _ in range(N)])
            assert codes == [200] * N
            assert {p.name.split("_")[-1].removesuffix(".db") for p in files.iterdir()} == {str(w) for w in workers}

            # gauges: each worker's queue depth and in-flight count as of its last sample (every 0.5 s)
            assert wait_for(lambda: _scrape(gw.url)["sollama_gateway_in_flight"] == [({}, 0.0)], 30, 0.2)
            scrapes = [_scrape(gw.url) for _ in range(6)]  # each on a new connection: either worker may answer
            for s in scrapes:
                assert _total(s, "sollama_gateway_requests_total", route="/api/generate", code="200") == N
                assert _total(s, "sollama_gateway_request_duration_seconds_count", route="/api/generate") == N
                assert _total(s, "sollama_gateway_ttft_seconds_count", route="/api/generate") == N
                assert _total(s, "sollama_gateway_tokens_total", kind="output") == 3 * N
                assert s["sollama_gateway_in_flight"] == [({}, 0.0)]
                assert s["sollama_gateway_queue_depth"] == [({}, 0.0)]
                assert s["sollama_gateway_slots"] == [({"upstream": stub.url.rstrip("/")}, 4.0)]
                assert not any("pid" in labels for samples in s.values() for labels, _ in samples)
            # the fleet's per-worker counters are summed too, each worker's as of its last sample (every 0.5 s)
            assert wait_for(lambda: _total(_scrape(gw.url), "sollama_gateway_host_requests_total") == N, 30, 0.2)
            with gateway(stub.url, isolated, "--slots", "4", state=redis_url, metrics_token="scrape-me") as one:
                assert generate(one.url, "m:1").status_code == 200
                single = _scrape(one.url)
            one_pid = one.proc.pid
            # the same series (names and label names) as one process serving the same way; left out: `_created`
            # (the counters' creation times, which multiprocess mode does not keep) and the loaded-model bytes (there
            # once a host poll, every 2 s, has seen the stub's model loaded)
            def comparable(samples) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
                return {n: labels for n, labels in _series(samples).items()
                        if not n.endswith("_created") and n != "sollama_gateway_host_loaded_model_bytes"}

            assert comparable(scrapes[-1]) == comparable(single)
            assert gw.stop() == 0
        log = [e for e in gw.access_log() if e["route"] == "/api/generate" and e["pid"] != one_pid]
    assert len(log) == N and {e["pid"] for e in log} == set(workers)  # both workers served
    assert not files.exists()  # removed with the workers


def test_one_worker_writes_no_metric_files(isolated):
    with StubOllama(models=("m:1",)) as stub:
        with gateway(stub.url, isolated, metrics_token="scrape-me") as gw:
            assert generate(gw.url, "m:1").status_code == 200
            s = _scrape(gw.url)
            assert _total(s, "sollama_gateway_requests_total", route="/api/generate", code="200") == 1
            assert s["sollama_gateway_in_flight"] == [({}, 0.0)]
            assert not (isolated / "state" / "gateway-metrics").exists()


def test_in_flight_is_the_sum_over_the_workers(isolated, redis_url):
    import threading

    with StubOllama(Script(tokens=30, token_delay=0.2), models=("m:1",)) as stub:
        with gateway(stub.url, isolated, "--workers", "2", "--slots", "8", state=redis_url,
                     metrics_token="scrape-me") as gw:
            assert wait_for(lambda: "sollama gateway on" in gw.output(), 60, 0.05), gw.output()
            threads = [threading.Thread(target=generate, args=(gw.url, "m:1")) for _ in range(6)]
            for t in threads:
                t.start()
            try:
                assert wait_for(lambda: _scrape(gw.url)["sollama_gateway_in_flight"] == [({}, 6.0)], 30, 0.1)
            finally:
                for t in threads:
                    t.join(timeout=60)
            assert wait_for(lambda: _scrape(gw.url)["sollama_gateway_in_flight"] == [({}, 0.0)], 30, 0.1)
    log = [e for e in gw.access_log() if e["route"] == "/api/generate"]
    assert len(log) == 6 and gw.proc.pid not in {e["pid"] for e in log}  # the workers served, not the supervisor
