"""Two real Ollama daemons serving SmolLM2 behind one gateway: a host stopped mid-run (by its PID) sends the
requests that had not started to the other host, no client sees a 5xx, and the host is used again once it is
back; the listings show each model once across both."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import TEST_MODEL, OllamaServer, free_port, start_ollama, stop_process
from tests.fleet_helpers import generate, metric, replica, run_parallel, upstreams
from tests.lifecycle_helpers import wait_for

pytestmark = pytest.mark.ollama


@dataclass
class Own:
    """A daemon of this test's own (the session's shared one must stay up for other tests)."""

    server: OllamaServer
    port: int
    proc: object = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        s = self.server
        self.proc, _ = start_ollama(s.binary, s.models_dir, s.home.parent / f"own-{self.port}-home",
                                    s.home.parent / f"own-{self.port}.log", port=self.port)

    def stop(self) -> None:
        stop_process(self.proc)  # SIGINT to the PID we started (SIGKILL that PID if it lingers)


@pytest.fixture
def own_ollama(ollama_server: OllamaServer) -> Iterator[Own]:
    own = Own(ollama_server, free_port())
    own.start()
    try:
        yield own
    finally:
        own.stop()


@dataclass
class Outcome:
    sent: float  # time.monotonic() when the request was sent
    status: int
    done: bool  # the stream ended with done: true
    error_line: bool  # the stream carried an error line (it had started: never replayed)


def one(url: str) -> Outcome:
    sent = time.monotonic()
    resp = generate(url, TEST_MODEL, options={"num_predict": 8, "seed": 1})
    return Outcome(sent, resp.status_code, '"done":true' in resp.text, '"error"' in resp.text)


def served(gw, host: str) -> float:
    return metric(gw, "sollama_gateway_host_requests_total", host=host) or 0.0


def test_a_real_host_stopped_mid_run_no_5xx_and_back_in_use(isolated, ollama, own_ollama):
    a, b = ollama.url, own_ollama.url
    for url in (a, b):  # the model loaded on both, outside the run
        assert generate(url, TEST_MODEL, options={"num_predict": 1}).status_code == 200
    with replica(isolated, upstreams=upstreams((a, 1), (b, 1)), poll_interval=1) as gw:
        import ollama as ollama_lib

        client = ollama_lib.Client(host=gw.url)
        assert [m.model for m in client.list().models].count(TEST_MODEL) == 1  # on both hosts, listed once
        assert [m.model for m in client.ps().models] == [TEST_MODEL]  # loaded on both, shown once

        warm = run_parallel([lambda: one(gw.url) for _ in range(4)])
        assert [o.status for o in warm] == [200] * 4 and served(gw, b) > 0  # both hosts serve

        outcomes: list[Outcome] = []
        lock = threading.Lock()

        def client_loop() -> None:
            for _ in range(8):
                outcome = one(gw.url)
                with lock:
                    outcomes.append(outcome)

        clients = [threading.Thread(target=client_loop) for _ in range(3)]
        for t in clients:
            t.start()
        assert wait_for(lambda: len(outcomes) >= 3, 120, 0.02)  # mid-run
        before_stop = served(gw, b)
        stop_sent = time.monotonic()
        own_ollama.stop()
        stopped = time.monotonic()
        for t in clients:
            t.join(300)
        b_while_down = served(gw, b)

        assert len(outcomes) == 24
        assert [o.status for o in outcomes if o.status >= 500] == []  # no client saw a 5xx
        assert all(o.status == 200 for o in outcomes)
        broken = [o for o in outcomes if not o.done]
        # only a request already streaming from b when it stopped may break (as an error line); b has 1 slot
        assert len(broken) <= 1 and all(o.error_line and o.sent < stopped for o in broken), broken
        after = [o for o in outcomes if o.sent > stopped]
        assert after and all(o.done for o in after)  # requests sent after the stop: all served, by a
        print(f"\nfailover: {len(outcomes)} requests, {len(after)} sent after b stopped (all done), "
              f"{len(broken)} broken mid-stream, 0 x 5xx; slots taken on b from the stop on: "
              f"{b_while_down - before_stop:g}; retries on another host: "
              f"{metric(gw, 'sollama_gateway_retries_total'):g}; stopping b took {stopped - stop_sent:.2f} s")

        own_ollama.start()  # back on the same port
        assert wait_for(lambda: httpx.get(gw.url + "/readyz", timeout=5).json()["hosts"][b], 60, 0.1)
        back = run_parallel([lambda: one(gw.url) for _ in range(4)])
        assert [o.done for o in back] == [True] * 4
        assert served(gw, b) > b_while_down  # used again
        print(f"back: b served {served(gw, b) - b_while_down:g} of 4 requests after it returned")
