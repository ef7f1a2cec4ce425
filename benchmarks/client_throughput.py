"""Streamed requests per second of the library's `AsyncClient` at concurrency 64 on the stub, against a bare
aiohttp loop and `httpx.AsyncClient`, in one run (the issue's goals: ≥ 0.8× bare aiohttp, ≥ 5× httpx).

Each request streams a generation of `--tokens` NDJSON chunks from `tests/stub_ollama.py` (a separate process,
pinned to its own core when there are two) and is read to its final chunk; every line is decoded as JSON in all
three loops, so the comparison is the client's own overhead (queue, breaker, retries, request log, typed events).
The three are run round-robin `--rounds` times and the median of each is reported.

    .venv/bin/python benchmarks/client_throughput.py [--concurrency 64] [--requests 2000] [--tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._stub import cpus, pin_self, stub_process  # noqa: E402

BODY = {"model": "stub-model", "prompt": "hello", "stream": True}


async def _drive(concurrency: int, requests: int, one) -> float:  # type: ignore[no-untyped-def]
    """Run `requests` calls of `one()` with `concurrency` workers; returns req/s."""
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - start)


async def bare_aiohttp(url: str, concurrency: int, requests: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one() -> None:
            async with session.post("/api/generate", json=BODY) as resp:
                while line := await resp.content.readline():
                    if json.loads(line).get("done"):
                        break

        return await _drive(concurrency, requests, one)


async def library_async(url: str, concurrency: int, requests: int) -> float:
    from ollama_ops import AsyncClient
    from ollama_ops.client.resilience import CircuitBreaker

    async with AsyncClient(url, max_concurrency=concurrency, max_queue=concurrency, breaker=CircuitBreaker()) as c:
        async def one() -> None:
            async for _ in await c.generate("stub-model", "hello", stream=True):
                pass

        return await _drive(concurrency, requests, one)


async def httpx_async(url: str, concurrency: int, requests: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def one() -> None:
            async with client.stream("POST", "/api/generate", json=BODY) as resp:
                async for line in resp.aiter_lines():
                    if line and json.loads(line).get("done"):
                        break

        return await _drive(concurrency, requests, one)


def _measure(fn, url: str, concurrency: int, requests: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall req/s, client CPU microseconds per request) of one loop."""
    cpu = time.process_time()
    rate = asyncio.run(fn(url, concurrency, requests))
    return rate, (time.process_time() - cpu) / requests * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--httpx-requests", type=int, default=500, help="httpx is slow: fewer requests keep it short")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    client_cpu, stub_cpu = cpus()
    loops = {"bare aiohttp": (bare_aiohttp, args.requests), "AsyncClient": (library_async, args.requests),
             "httpx.AsyncClient": (httpx_async, args.httpx_requests)}
    rates: dict[str, list[float]] = {name: [] for name in loops}
    cpu_us: dict[str, list[float]] = {name: [] for name in loops}
    with stub_process("--tokens", str(args.tokens), cpu=stub_cpu if stub_cpu != client_cpu else None) as (_, port):
        if stub_cpu != client_cpu:
            pin_self(client_cpu)
        url = f"http://127.0.0.1:{port}"
        for fn, _ in loops.values():  # warm-up: imports, first connections
            asyncio.run(fn(url, args.concurrency, 200))
        for _ in range(args.rounds):  # interleaved, so drifts of a shared machine hit all three alike
            for name, (fn, n) in loops.items():
                rate, us = _measure(fn, url, args.concurrency, n)
                rates[name].append(rate)
                cpu_us[name].append(us)
    print(f"streamed requests at concurrency {args.concurrency}, {args.tokens} chunks each, {args.rounds} interleaved "
          f"rounds (stub on core {stub_cpu}, client on core {client_cpu}); medians")
    print(f"  {'loop':18s} {'req/s':>8s} {'client CPU us/req':>18s}")
    for name in loops:
        print(f"  {name:18s} {statistics.median(rates[name]):8.1f} {statistics.median(cpu_us[name]):18.0f}")
    for other, goal in (("bare aiohttp", 0.8), ("httpx.AsyncClient", 5.0)):
        paired = statistics.median(a / b for a, b in zip(rates["AsyncClient"], rates[other], strict=True))
        capacity = statistics.median(b / a for a, b in zip(cpu_us["AsyncClient"], cpu_us[other], strict=True))
        print(f"AsyncClient / {other}: {paired:.2f}x req/s (median of paired rounds), {capacity:.2f}x by client CPU "
              f"per request; goal >= {goal:g}x: {'met' if min(paired, capacity) >= goal else 'NOT met'}")


if __name__ == "__main__":
    main()
