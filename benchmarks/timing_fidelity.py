"""Timing fidelity: TTFT and TPOT medians measured by `sollama bench` vs the stub's script.

    .venv/bin/python benchmarks/timing_fidelity.py [--requests 64] [--concurrency 1 32]

The stub (its own process on its own core; the client pinned to another) sends the first token 80 ms after a
request, then one every 10 ms. Target: the medians within 1 ms of 80 ms and 10 ms at concurrency 1 and 32. What
the stub adds itself is printed next to it (its own clock: load + prompt_eval), and so is the TTFT a bare aiohttp
loop measures in the same conditions: the floor that this machine's scheduling and loopback set.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._stub import cpus, pin_self, stub_process  # noqa: E402

FIRST, STEP, TOKENS = 0.080, 0.010, 16
BODY = b'{"model":"stub-model","prompt":"hi","stream":true}'


async def bare_ttft(url: str, concurrency: int, n: int) -> float:
    """Median TTFT of a bare aiohttp loop (time to the first line)."""
    import aiohttp

    samples: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def worker(k: int) -> None:
            for _ in range(k):
                t0 = time.perf_counter()
                first = None
                async with session.post(url, data=BODY, headers={"Content-Type": "application/json"}) as resp:
                    async for _line in resp.content:
                        first = first or time.perf_counter()
                samples.append((first or t0) - t0)
        await asyncio.gather(*(worker(max(2, n // concurrency)) for _ in range(concurrency)))
    return statistics.median(samples[concurrency:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    from ollama_ops.edges.store import Store
    from ollama_ops.services.bench import BenchConfig, run_bench
    from ollama_ops.services.bench_runner import LoadSpec

    db = Path(tempfile.mkdtemp(prefix="sollama-fidelity-")) / "h.db"
    client_cpu, stub_cpu = cpus()
    pin_self(client_cpu)
    with stub_process("--tokens", str(TOKENS), "--first-token-delay", str(FIRST), "--token-delay", str(STEP),
                      cpu=stub_cpu) as (_proc, port):
        print(f"script: first token {FIRST * 1000:.0f} ms, then {STEP * 1000:.0f} ms per token, {TOKENS} tokens")
        print(f"{'conc':>5} {'n':>5} {'TTFT p50 ms':>12} {'Δ ms':>7} {'TPOT p50 ms':>12} {'Δ ms':>7} "
              f"{'ITL p50 ms':>11} {'stub TTFT p50':>14} {'bare aiohttp TTFT p50':>22}")
        for c in args.concurrency:
            n = max(args.requests, 2 * c)
            config = BenchConfig(model="stub-model", base_url=f"http://127.0.0.1:{port}", host=f"127.0.0.1:{port}",
                                 load=LoadSpec(concurrency=c, requests=n, warmup=c), max_tokens=64, timeout=30,
                                 store_path=db)
            result = run_bench(config)
            s = result.summary
            with Store(db) as store:
                server_ttft = statistics.median((r.load_s or 0) + (r.prompt_eval_s or 0)
                                                for r in store.requests(result.run_id))
            ttft, tpot, itl = s.ttft.p50, s.tpot.p50, s.itl.p50
            bare = asyncio.run(bare_ttft(f"http://127.0.0.1:{port}/api/generate", c, n))
            print(f"{c:>5} {s.requests_ok:>5} {ttft * 1000:>12.2f} {(ttft - FIRST) * 1000:>+7.2f} "
                  f"{tpot * 1000:>12.3f} {(tpot - STEP) * 1000:>+7.3f} {itl * 1000:>11.3f} "
                  f"{server_ttft * 1000:>14.2f} {bare * 1000:>22.2f}", flush=True)


if __name__ == "__main__":
    main()
