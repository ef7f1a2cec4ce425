"""Gateway replicas over several hosts for the fleet tests: `sollama serve` subprocesses configured through
SOLLAMA_GATEWAY_* (upstreams, state, store), each stopped by its own PID."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from pathlib import Path

import httpx

from tests.gateway_helpers import GatewayProc, env_for, gateway, sollama_argv


def upstreams(*hosts: tuple[str, int]) -> str:
    return ",".join(f"{url} slots={slots}" for url, slots in hosts)


def replica(home: Path, **settings: object) -> contextlib.AbstractContextManager[GatewayProc]:
    """One `sollama serve` replica on a free loopback port; `settings` become SOLLAMA_GATEWAY_* variables."""
    return gateway(None, home, **settings)


def generate(url: str, model: str, key: str | None = None, timeout: float = 120, **extra) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(url + "/api/generate", json={"model": model, "prompt": "hi", "stream": True, **extra},
                      headers=headers, timeout=timeout)


def run_parallel(calls: list) -> list:
    """Run the zero-argument `calls` on threads at once; their results in order (an exception is a result)."""
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait(30)
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def metric(gw: GatewayProc, name: str, token: str | None = None, **labels: str) -> float | None:
    """One sample from the replica's /metrics (None when absent); `token`: an admin key or the metrics token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.get(gw.url + "/metrics", headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    text = resp.text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def max_concurrency(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def cli(home: Path, *args: str, **settings: object) -> subprocess.CompletedProcess[str]:
    """The real `sollama` as a subprocess with SOLLAMA_GATEWAY_* settings."""
    return subprocess.run([*sollama_argv(), *args], env=env_for(home, **settings), capture_output=True, text=True,
                          timeout=120)
