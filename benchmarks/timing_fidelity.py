"""Timing fidelity: TTFT and TPOT medians measured by `sollama bench` vs the stub's script and vs what it did.

    .venv/bin/python benchmarks/timing_fidelity.py [--requests 128] [--concurrency 1 32] [--spin-us 500]

The stub (its own process on its own core; the client pinned to the other) is scripted to send the first token
80 ms after a request arrives (the kernel's receive timestamp of its last bytes), then one every 10 ms; it polls
for the last `--spin-us` before each timer so that its core is awake when the timer is due. Target: `sollama
bench`'s medians within 1 ms of the script at concurrency 1 and 32. Side by side, per concurrency:

- script: what the stub was told to do;
- stub: what it did, on its own clock (request's last bytes in, kernel stamp → first / last token chunk handed to
  the socket);
- bare aiohttp: a minimal aiohttp loop, clock read before `session.post`, time to the first/last line;
- sollama: `sollama bench` (run_bench, history in a temporary file; chunk arrivals are kernel receive
  timestamps, see `ollama_ops/edges/stamped.py`).

Both processes read the same system-wide monotonic clock (perf_counter and monotonic are CLOCK_MONOTONIC on
Linux), so each bare request (tagged X-Request-Id) is lined up with the stub's record of it and its TTFT is split
into client send → stub receives, stub receives → first write (script + the stub's lateness), and first write →
client reads it. For sollama the stub's own TTFT of the same request comes back in its final chunk (load +
prompt_eval = arrival → first write), so "vs stub" is a per-request difference too.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._stub import cpus, pin_self, stub_process  # noqa: E402

FIRST, STEP, TOKENS = 0.080, 0.010, 16
BODY = b'{"model":"stub-model","prompt":"hi","stream":true}'


def stub_stats(port: int, clear: bool = False) -> dict[str, Any]:
    """The stub's timing record (GET), or the record so far and a fresh start (DELETE)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("DELETE" if clear else "GET", "/api/_stub/stats")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def stub_medians(records: list[dict[str, Any]]) -> tuple[float, float]:
    """(TTFT, TPOT) medians of what the stub did, on its own clock."""
    ttft = [r["first"] - r["rx"] for r in records]
    tpot = [(r["last"] - r["first"]) / (r["tokens"] - 1) for r in records if r["tokens"] > 1]
    return statistics.median(ttft), statistics.median(tpot)


async def bare_loop(url: str, concurrency: int, n: int) -> dict[str, tuple[float, float | None, float | None, int]]:
    """A minimal aiohttp loop: per X-Request-Id, (send, first text line, last text line, text lines)."""
    import aiohttp

    out: dict[str, tuple[float, float | None, float | None, int]] = {}
    counter = iter(range(1, 10**9))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def worker(k: int) -> None:
            for _ in range(k):
                rid = str(next(counter))
                first = last = None
                lines = 0
                t0 = time.perf_counter()
                async with session.post(url, data=BODY, headers={"Content-Type": "application/json",
                                                                 "X-Request-Id": rid}) as resp:
                    async for line in resp.content:
                        if b'"done":false' in line:
                            last = time.perf_counter()
                            first = first or last
                            lines += 1
                out[rid] = (t0, first, last, lines)
        await asyncio.gather(*(worker(max(2, n // concurrency)) for _ in range(concurrency)))
    return out


def run_sollama(port: int, c: int, n: int, db: Path) -> tuple[float, float, float, int]:
    """sollama bench medians (TTFT, TPOT), per-request median of TTFT − the stub's own TTFT, requests ok."""
    from ollama_ops.core.bench.load import LoadSpec
    from ollama_ops.edges.store import Store
    from ollama_ops.services.bench.config import BenchConfig
    from ollama_ops.services.bench.run import run_bench

    config = BenchConfig(model="stub-model", base_url=f"http://127.0.0.1:{port}", host=f"127.0.0.1:{port}",
                         load=LoadSpec(concurrency=c, requests=n, warmup=c), max_tokens=64, timeout=30,
                         store_path=db)
    result = run_bench(config)
    with Store(db) as store:
        rows = [r for r in store.requests(result.run_id) if r.ok and not r.warmup and r.ttft is not None]
    vs_stub = statistics.median(r.ttft - ((r.load_s or 0) + (r.prompt_eval_s or 0)) for r in rows)
    s = result.summary
    return s.ttft.p50, s.tpot.p50, vs_stub, s.requests_ok


def ms(x: float) -> str:
    return f"{x * 1000:9.3f}"


def dms(x: float) -> str:
    return f"{x * 1000:+8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--spin-us", type=float, default=500,
                        help="the stub polls instead of sleeping this long before each timer (0: off)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sollama-fidelity-"))
    client_cpu, stub_cpu = cpus()
    pin_self(client_cpu)
    with stub_process("--tokens", str(TOKENS), "--first-token-delay", str(FIRST), "--token-delay", str(STEP),
                      "--spin-us", str(args.spin_us),
                      cpu=stub_cpu) as (_proc, port):
        url = f"http://127.0.0.1:{port}/api/generate"
        print(f"script: first token {FIRST * 1000:.0f} ms after the request, then {STEP * 1000:.0f} ms per token, "
              f"{TOKENS} tokens; client on cpu {client_cpu}, stub on cpu {stub_cpu}; medians in ms")
        print(f"{'conc':>4} {'metric':>6} {'script':>9} {'stub':>9} {'bare':>9} {'sollama':>9} │ "
              f"{'stub-scr':>8} {'bare-scr':>8} {'soll-scr':>8} {'bare-stb':>8} {'soll-stb':>8}")
        notes = []
        for c in args.concurrency:
            n = max(args.requests, 2 * c)
            stub_stats(port, clear=True)
            s_ttft, s_tpot, s_vs_stub, ok = run_sollama(port, c, n, tmp / f"h{c}.db")
            st = stub_stats(port, clear=True)
            recs = sorted(st["requests"], key=lambda r: r["rx"])[c:]  # the first c were the warm-up
            stub_s = stub_medians(recs)

            bare = asyncio.run(bare_loop(url, c, n))
            st_b = stub_stats(port, clear=True)
            by_id = {r["id"]: r for r in st_b["requests"]}
            parts = []
            b_ttft, b_tpot = [], []
            for rid, (t0, first, last, lines) in bare.items():
                if int(rid) <= c or first is None or rid not in by_id:  # warm-up: the first c requests
                    continue
                r = by_id[rid]
                b_ttft.append(first - t0)
                if lines > 1 and last is not None:
                    b_tpot.append((last - first) / (lines - 1))
                parts.append((r["rx"] - t0, r["first"] - r["rx"], first - r["first"]))
            stub_b = stub_medians([by_id[rid] for rid in bare if int(rid) > c and rid in by_id])
            bare_s = (statistics.median(b_ttft), statistics.median(b_tpot))

            for i, name in enumerate(("TTFT", "TPOT")):
                script = FIRST if i == 0 else STEP
                stub_v = stub_s[i]
                print(f"{c:>4} {name:>6} {ms(script)} {ms(stub_v)} {ms(bare_s[i])} {ms((s_ttft, s_tpot)[i])} │ "
                      f"{dms(stub_v - script)} {dms(bare_s[i] - script)} {dms((s_ttft, s_tpot)[i] - script)} "
                      f"{dms(bare_s[i] - stub_b[i])} {dms((s_ttft, s_tpot)[i] - stub_v)}", flush=True)
            med = [statistics.median(p) for p in zip(*parts, strict=True)]
            late = {k: v * 1000 for k, v in st["lateness"].items()}
            notes.append(
                f"c={c}: sollama {ok} ok; per request TTFT − stub's own TTFT: sollama {s_vs_stub * 1000:+.3f} ms; "
                f"bare {statistics.median(x - y for x, (_, y, _) in zip(b_ttft, parts, strict=True)) * 1000:+.3f}"
                f" ms = send→stub rx {med[0] * 1000:.3f} + stub write→client read {med[2] * 1000:.3f} "
                f"(stub rx→first write {med[1] * 1000:.3f}); stub paced writes late p50 {late['p50']:.3f} / "
                f"p90 {late['p90']:.3f} / max {late['max']:.3f} ms over {st['writes']}; "
                f"TCP_NODELAY on {st['nodelay']['on']}/{st['nodelay']['on'] + st['nodelay']['off']} stub conns")
        print("\n".join(notes))


if __name__ == "__main__":
    main()
