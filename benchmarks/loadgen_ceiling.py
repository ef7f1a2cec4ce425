"""Load-generator ceiling: a bare aiohttp loop vs a bare httpx loop vs `sollama bench`'s runner, one stub.

    .venv/bin/python benchmarks/loadgen_ceiling.py [--seconds 2] [--tokens 16] [--concurrency 1 16 64]
        [--api generate | openai-chat | openai-completions]

The stub (tests/stub_ollama.py, raw asyncio) runs as its own process on its own core; the client is pinned to
one core. Each contender runs for the same wall time at each concurrency, in the same run, alternating, and the
best of `--trials` is kept. Prints req/s (and chunks/s) side by side, sollama/aiohttp, and the stub's CPU share.
Target: sollama ≥ 0.80 × aiohttp at every concurrency, for the native NDJSON path and the OpenAI SSE path (the
bare loops read the same stream line by line; sollama decodes each event and clocks every text chunk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402

from benchmarks._stub import cpus, pin_self, stub_process  # noqa: E402

PROMPT = "What is the capital of France?"
BODIES = {
    "generate": json.dumps({"model": "stub-model", "prompt": PROMPT, "stream": True,
                            "options": {"num_predict": 64}}).encode(),
    "openai-chat": json.dumps({"model": "stub-model", "messages": [{"role": "user", "content": PROMPT}],
                               "stream": True, "stream_options": {"include_usage": True},
                               "max_tokens": 64}).encode(),
    "openai-completions": json.dumps({"model": "stub-model", "prompt": PROMPT, "stream": True,
                                      "stream_options": {"include_usage": True}, "max_tokens": 64}).encode(),
}
PATHS = {"generate": "/api/generate", "openai-chat": "/v1/chat/completions", "openai-completions": "/v1/completions"}
BODY = BODIES["generate"]


async def bare_aiohttp(url: str, concurrency: int, seconds: float) -> tuple[int, int]:
    done = chunks = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def worker() -> None:
            nonlocal done, chunks
            while time.perf_counter() < deadline:
                async with session.post(url, data=BODY, headers={"Content-Type": "application/json"}) as resp:
                    async for _line in resp.content:
                        time.perf_counter()
                        chunks += 1
                done += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, chunks


async def bare_httpx(url: str, concurrency: int, seconds: float) -> tuple[int, int]:
    done = chunks = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:
        async def worker() -> None:
            nonlocal done, chunks
            while time.perf_counter() < deadline:
                async with client.stream("POST", url, content=BODY,
                                         headers={"Content-Type": "application/json"}) as resp:
                    async for _line in resp.aiter_lines():
                        time.perf_counter()
                        chunks += 1
                done += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, chunks


def sollama_runner(port: int, concurrency: int, seconds: float, db: str,
                   api: str = "generate") -> tuple[int, float]:
    from ollama_ops.core.bench.load import LoadSpec
    from ollama_ops.services.bench.config import BenchConfig
    from ollama_ops.services.bench.run import run_bench

    config = BenchConfig(model="stub-model", base_url=f"http://127.0.0.1:{port}", host=f"127.0.0.1:{port}",
                         load=LoadSpec(concurrency=concurrency, requests=None, duration=seconds, warmup=0),
                         max_tokens=64, timeout=30, store_path=db, api=api)  # type: ignore[arg-type]
    result = run_bench(config)
    s = result.summary
    return s.requests_ok + s.requests_failed, s.duration_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--api", choices=list(PATHS), default="generate")
    args = parser.parse_args()
    global BODY
    BODY = BODIES[args.api]
    client_cpu, stub_cpu = cpus()
    pin_self(client_cpu)
    tmp = tempfile.mkdtemp(prefix="sollama-ceiling-")
    with stub_process("--tokens", str(args.tokens), cpu=stub_cpu) as (proc, port):
        url = f"http://127.0.0.1:{port}{PATHS[args.api]}"
        stub_ps = psutil.Process(proc.pid)
        print(f"api {args.api}; client on cpu {client_cpu}, stub (pid {proc.pid}) on cpu {stub_cpu}; "
              f"{args.tokens} chunks a "
              f"response (+1 final); {args.seconds:g}s per trial, best of {args.trials}")
        print(f"{'conc':>5} {'aiohttp r/s':>12} {'httpx r/s':>10} {'sollama r/s':>12} {'sollama/aiohttp':>16} "
              f"{'aiohttp chunks/s':>17} {'stub cpu%':>10}")
        for c in args.concurrency:
            best = {"aiohttp": 0.0, "httpx": 0.0, "sollama": 0.0}
            chunk_rate = 0.0
            stub_cpu_pct = []
            for trial in range(args.trials):
                stub_ps.cpu_percent(None)
                t0 = time.perf_counter()
                done, chunks = asyncio.run(bare_aiohttp(url, c, args.seconds))
                wall = time.perf_counter() - t0
                stub_cpu_pct.append(stub_ps.cpu_percent(None))
                best["aiohttp"] = max(best["aiohttp"], done / wall)
                chunk_rate = max(chunk_rate, chunks / wall)
                t0 = time.perf_counter()
                done, _ = asyncio.run(bare_httpx(url, c, args.seconds))
                best["httpx"] = max(best["httpx"], done / (time.perf_counter() - t0))
                stub_ps.cpu_percent(None)
                done, wall = sollama_runner(port, c, args.seconds, f"{tmp}/h{c}-{trial}.db", args.api)
                stub_cpu_pct.append(stub_ps.cpu_percent(None))
                best["sollama"] = max(best["sollama"], done / wall if wall else 0.0)
            ratio = best["sollama"] / best["aiohttp"] if best["aiohttp"] else 0.0
            print(f"{c:>5} {best['aiohttp']:>12.0f} {best['httpx']:>10.0f} {best['sollama']:>12.0f} "
                  f"{ratio:>16.2f} {chunk_rate:>17.0f} {max(stub_cpu_pct):>10.0f}", flush=True)


if __name__ == "__main__":
    main()
