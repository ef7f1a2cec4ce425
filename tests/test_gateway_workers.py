"""`sollama serve --workers N`: several worker processes on one port keep the slot and limit guarantees only with
shared state. Without `gateway.state` it is refused (exit 2); with a real Redis, two workers together allow a key's
rpm exactly and never send the upstream more than its slots (measured by the upstream itself), and both workers
serve (the access log names each request's process)."""

from __future__ import annotations

import re
import signal
import time

import psutil

from tests.fleet_helpers import generate, max_concurrency, run_parallel
from tests.gateway_helpers import gateway, make_key
from tests.lifecycle_helpers import wait_for
from tests.stub_ollama import Script, StubOllama


def test_workers_without_shared_state_are_refused_with_exit_2(sollama):
    result = sollama("serve", "--workers", "2")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers above 1 needs shared state (gateway.state: redis://…)" in lines[0]
    assert sollama("serve", "--workers", "0").exit_code == 2


def _pids(entries: list[dict]) -> set[int]:
    return {e["pid"] for e in entries}


def _workers(gw) -> list[int]:  # type: ignore[no-untyped-def]
    """The worker processes of this `sollama serve` (not multiprocessing's resource tracker), once the gateway says it
    serves: that line comes only when every worker listens, so each one gets its share of the connections after it."""
    assert wait_for(lambda: "sollama gateway on" in gw.output(), 60, 0.05), gw.output()
    return [p.pid for p in psutil.Process(gw.proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]


def test_two_workers_allow_a_keys_rpm_exactly(isolated, redis_url):
    secret = make_key(isolated, "team-a", "--rpm", "10")
    into_minute = time.time() % 60
    if into_minute > 40:  # one fixed window for the whole run
        time.sleep(60.5 - into_minute)
    with StubOllama(models=("m:1",)) as stub:
        with gateway(stub.url, isolated, "--workers", "2", "--slots", "4", state=redis_url) as gw:
            workers = _workers(gw)
            assert len(workers) == 2, gw.output()
            codes = run_parallel([lambda: generate(gw.url, "m:1", secret).status_code for _ in range(30)])
        served = sum(1 for _, path, _ in stub.requests if path == "/api/generate")
    assert sorted(codes) == [200] * 10 + [429] * 20, codes
    assert served == 10
    log = [e for e in gw.access_log() if e["route"] == "/api/generate"]
    assert len(log) == 30 and _pids(log) == set(workers)  # both workers answered this key's requests


def test_two_workers_never_exceed_the_upstreams_slots(isolated, redis_url):
    with StubOllama(Script(tokens=4, token_delay=0.05), models=("m:1",)) as stub:
        with gateway(stub.url, isolated, "--workers", "2", "--slots", "2", state=redis_url) as gw:
            workers = _workers(gw)
            codes = run_parallel([lambda: generate(gw.url, "m:1").status_code for _ in range(24)])
            assert gw.stop() == 0  # SIGTERM to the parent: forwarded, both workers drain, exit 0
        seen = stub.stats()["requests"]
    assert codes == [200] * 24
    assert len(seen) == 24 and max_concurrency([(r["rx"], r["last"]) for r in seen]) == 2
    log = [e for e in gw.access_log() if e["route"] == "/api/generate"]
    assert len(log) == 24 and _pids(log) == set(workers)
    assert all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
               for pid in workers)


def test_a_worker_that_dies_stops_the_others_and_fails_the_gateway(isolated, redis_url):
    with StubOllama(models=("m:1",)) as stub:
        with gateway(stub.url, isolated, "--workers", "2", state=redis_url) as gw:
            first, second = _workers(gw)
            victim = psutil.Process(first)
            assert victim.ppid() == gw.proc.pid  # a worker of the gateway this test started
            victim.kill()
            assert gw.proc.wait(timeout=60) == 1
            assert re.search(rf"gateway worker sollama-gateway-worker-[12] \(pid {first}\) exited with code -9; "
                             r"stopped the other workers", gw.output()), gw.output()
            assert not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE


def test_ctrl_c_reaches_every_worker_once_and_exits_130(isolated, redis_url):
    with StubOllama(models=("m:1",)) as stub:
        with gateway(stub.url, isolated, "--workers", "2", state=redis_url) as gw:
            workers = _workers(gw)
            assert len(workers) == 2
            assert gw.stop(sig=signal.SIGINT) == 130
            assert all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
                       for pid in workers)
