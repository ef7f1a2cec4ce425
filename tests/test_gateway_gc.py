"""A request through the gateway leaves no reference cycle behind: what it made (its connection's cycle, scope,
task, Exchange, callbacks) is freed by reference counting when it ends, so the garbage collector has nothing of it
to find. Cycles left per request made the collector run every dozen requests under load, with 1-5 ms pauses that
landed on the requests in flight (benchmarks/gateway_overhead.py, c=64)."""

from __future__ import annotations

import gc
import json
import time
from collections import Counter

import httpx
import pytest

from ollama_ops.gateway.compose import open_keyring
from ollama_ops.gateway.server import _server, bind
from ollama_ops.gateway.settings import GatewayConfig
from tests.gateway_helpers import serving_in_thread

pytest.importorskip("uvloop")


def _ours(garbage: list) -> Counter:
    """What of ours is in the collector's garbage: objects of ollama_ops types and ollama_ops coroutines."""
    found: Counter = Counter()
    for obj in garbage:
        kind = type(obj)
        if kind.__module__.startswith("ollama_ops"):
            found[kind.__qualname__] += 1
        code = getattr(obj, "cr_code", None)
        if code is not None and "ollama_ops" in code.co_filename:
            found[f"coroutine {code.co_qualname}"] += 1
    return found


def _requests(client: httpx.Client, url: str) -> list[int]:
    statuses = []
    for stream in (True, False):
        with client.stream("POST", url + "/api/generate",
                           json={"model": "stub-model", "prompt": "hi", "stream": stream}) as resp:
            lines = [json.loads(line) for line in resp.iter_lines() if line]
            statuses.append(resp.status_code)
            assert lines[-1]["done"] is True
    resp = client.post(url + "/v1/chat/completions",
                       json={"model": "stub-model", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    statuses.append(resp.status_code)
    assert resp.text.rstrip().endswith("data: [DONE]")
    statuses.append(client.get(url + "/api/tags").status_code)
    statuses.append(client.get(url + "/api/nope").status_code)
    return statuses


def test_requests_through_the_gateway_leave_no_reference_cycle(stub, tmp_path) -> None:
    config = GatewayConfig(upstream=f"http://127.0.0.1:{stub.port}", slots=4, keys_path=tmp_path / "keys.json",
                           access_log_path=tmp_path / "gateway.log", usage_db=tmp_path / "usage.db")
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    threshold = gc.get_threshold()
    server = _server(config, open_keyring(config))
    try:
        with serving_in_thread(server, sock):
            _no_cycle_left(server, url)
    finally:
        gc.unfreeze()  # the gateway's start-up froze this test process's objects
        gc.set_threshold(*threshold)


def _no_cycle_left(server, url: str) -> None:
    """Requests of every kind on fresh connections, then nothing of ours in the collector's garbage."""
    for _ in range(500):  # bounded: 5 s
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.01)
    with httpx.Client(timeout=10) as client:  # warm-up: what lives as long as the process is made now
        assert _requests(client, url) == [200, 200, 200, 200, 404]
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            with httpx.Client(timeout=10) as client:
                assert _requests(client, url) == [200, 200, 200, 200, 404]
        for _ in range(500):  # bounded: 5 s for the server to see the connections close
            if not server.connections:
                break
            time.sleep(0.01)
        assert not server.connections
        gc.collect()
        left = _ours(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == Counter()

