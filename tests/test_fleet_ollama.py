"""Two real Ollama daemons serving SmolLM2 behind two gateway replicas sharing a real Redis: a key's rpm limit is
exact across the replicas, each host's in-flight count never passes its slots, and both hosts serve."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from ollama_ops.fleet.slots import RedisSlots
from tests.conftest import TEST_MODEL, OllamaServer, start_ollama, stop_process
from tests.fleet_helpers import generate, metric, replica, run_parallel, upstreams
from tests.gateway_helpers import make_key


@pytest.fixture
def second_ollama(ollama_server: OllamaServer, tmp_path) -> Iterator[str]:
    """Another real daemon on its own port, with the first one's models (SmolLM2 already imported there)."""
    home = tmp_path / "ollama2-home"
    proc, host = start_ollama(ollama_server.binary, ollama_server.models_dir, home, tmp_path / "ollama2.log")
    try:
        yield f"http://{host}"
    finally:
        stop_process(proc)


def sample_in_flight(redis_url: str, hosts: list[str], stop: threading.Event, out: list[dict]) -> None:
    async def run() -> None:
        pool = RedisSlots(redis_url)
        try:
            while not stop.is_set():
                out.append(await pool.in_flight(hosts))
                await asyncio.sleep(0.01)
        finally:
            await pool.close()

    asyncio.run(run())


def test_two_real_hosts_two_replicas_exact_rpm_and_slots(isolated, ollama, second_ollama, redis_url):
    hosts = [ollama.url, second_ollama]
    secret = make_key(isolated, "team-a", "--rpm", "8")
    cfg = {"upstreams": upstreams((hosts[0], 1), (hosts[1], 1)), "state": redis_url, "metrics_token": "m-token"}
    for url in hosts:  # load the model on both, outside the measured window
        assert generate(url, TEST_MODEL, options={"num_predict": 1}).status_code == 200
    into_minute = time.time() % 60
    if into_minute > 30:  # one fixed rpm window for the whole run
        time.sleep(60.5 - into_minute)
    with replica(isolated, **cfg) as r1, replica(isolated, **cfg) as r2:
        samples: list[dict] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_in_flight, args=(redis_url, hosts, stop, samples))
        sampler.start()
        try:
            calls = [lambda gw=gw: generate(gw.url, TEST_MODEL, secret, options={"num_predict": 8, "seed": 1})
                     for gw in (r1, r2) for _ in range(8)]
            responses = run_parallel(calls)
        finally:
            stop.set()
            sampler.join(30)
        served = [sum(metric(gw, "sollama_gateway_host_requests_total", "m-token", host=h) or 0 for gw in (r1, r2))
                  for h in hosts]
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 8 + [429] * 8, codes  # exactly the limit through both replicas, not 2 x 8
    assert all('"done":true' in r.text for r in responses if r.status_code == 200)
    assert sum(served) == 8 and min(served) > 0, served  # both hosts served
    assert len(samples) > 10
    peaks = {h: max(s[h] for s in samples) for h in hosts}
    assert peaks == {hosts[0]: 1, hosts[1]: 1}, peaks  # in use, never beyond one slot each
