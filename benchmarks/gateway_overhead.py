"""What `sollama serve` adds: the same `sollama bench` load direct to the stub and through the gateway, in one run.

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 300] [--requests-64 3000] [--trials 2]
                                                    [--streams 1000] [--flat 20000] [--floor]

The stub (tests/stub_ollama.py, its own process) streams 16 chunks per request, the first 20 ms after the request
arrives, then one every 2 ms. The load generator is sollama's bench runner (chunk arrivals are the kernel's
receive timestamps at the client socket); direct and gateway runs alternate, trial by trial, so drift on a shared
machine hits both. The gateway runs as `sollama serve` (its own server, `gateway/httpd/`, on uvloop and
httptools; the upstream over the library's streaming layer, `client.stream`, wire transport) with enough slots
that its queue never holds a request, so the figures are its per-request overhead.

Prints: added TTFT p50/p99 at concurrency 1 and 64, added inter-chunk gap p99, throughput through the gateway as
a share of direct at 64, gateway RSS idle, with --streams open streams, and over --flat requests.
Goals (issue 11): TTFT +0.5 ms p50 / +2 ms p99 at c=1, +2 / +8 ms at c=64; ITL p99 +0.5 ms; throughput ≥ 60%;
RSS ≤ 80 MB idle, ≤ 200 MB with 1,000 open streams, flat over 100,000 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._stub import ROOT, stub_process  # noqa: E402

STUB_ARGS = ("--tokens", "16", "--first-token-delay", "0.02", "--token-delay", "0.002", "--uvloop")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sollama_argv() -> list[str]:
    """How to run this checkout's `sollama` (its venv's entry point, else `python -m ollama_ops`)."""
    exe = ROOT / ".venv" / "bin" / "sollama"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "ollama_ops"]


@contextlib.contextmanager
def _serving(argv: list[str], port: int, probe: str, what: str, env: dict[str, str] | None = None,
             stop_timeout: float = 30) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run `argv` (it listens on loopback `port`); yield (process, its URL) once GET `probe` answers 200 (within 60
    s); stop it by its PID."""
    import httpx

    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + probe, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{what} did not start")
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def gateway_process(upstream: int | str, home: Path, slots: int = 1024) -> Iterator[tuple[subprocess.Popen, str]]:
    """`sollama serve` on a free loopback port with SOLLAMA_HOME=`home`, in front of `upstream` (a loopback port,
    or an address); yields (process, its URL) once /healthz answers; stops it by its PID."""
    port = _free_port()
    upstream = f"127.0.0.1:{upstream}" if isinstance(upstream, int) else upstream
    env = {**os.environ, "SOLLAMA_HOME": str(home), "SOLLAMA_GATEWAY_QUEUE_DEPTH": "100000",
           "SOLLAMA_GATEWAY_BODY_LIMIT": "1048576"}
    argv = [*sollama_argv(), "serve", "--listen", f"127.0.0.1:{port}", "--upstream", upstream, "--slots", str(slots)]
    with _serving(argv, port, "/healthz", "gateway", env) as started:
        yield started


@contextlib.contextmanager
def relay_process(upstream_port: int, wanted: bool) -> Iterator[str | None]:
    """benchmarks/_relay.py in front of the stub (its URL), or None when not `wanted`; stopped by its PID."""
    if not wanted:
        yield None
        return
    port = _free_port()
    argv = [sys.executable, str(Path(__file__).with_name("_relay.py")), str(port), str(upstream_port)]
    with _serving(argv, port, "/api/version", "the relay", stop_timeout=10) as (_proc, url):
        yield url


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def _cpu_s(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def _bench(url: str, concurrency: int, requests: int, db: Path, *, model: str = "stub-model",
           max_tokens: int = 64, warmup: int | None = None, prompts: str = "short",
           options: dict | None = None, headers: dict[str, str] | None = None, timeout: float = 60) -> dict:
    """One `sollama bench` run (its own runner, stored in `db`); the measured successful requests' figures in
    seconds: ttft, itl (pooled gaps), e2el, server_total (the server's total_duration), server_gap (E2EL −
    total_duration), gateway_wait (X-Queue-Wait-Ms, when a gateway sent it); plus rps, ok and failed."""
    from ollama_ops.core.bench.load import LoadSpec
    from ollama_ops.edges.store import Store
    from ollama_ops.services.bench.config import BenchConfig
    from ollama_ops.services.bench.run import run_bench

    warmup = min(32, requests // 10) if warmup is None else warmup
    config = BenchConfig(model=model, base_url=url, host=url, max_tokens=max_tokens, prompts=prompts,
                         options=dict(options or {}), headers=dict(headers or {}),
                         load=LoadSpec(concurrency=concurrency, requests=requests, warmup=warmup),
                         timeout=timeout, store_path=db)
    result = run_bench(config)
    with Store(db) as store:
        rows = [r for r in store.requests(result.run_id) if r.ok and not r.warmup]
    return {"ttft": [r.ttft for r in rows if r.ttft is not None], "itl": [g for r in rows for g in r.itl],
            "e2el": [r.e2el for r in rows if r.e2el is not None],
            "server_gap": [r.queue_s for r in rows if r.queue_s is not None],
            "server_total": [r.total_s for r in rows if r.total_s is not None],
            "gateway_wait": [r.gateway_queue_s for r in rows if r.gateway_queue_s is not None],
            "rps": result.summary.request_throughput, "ok": len(rows),
            "failed": result.summary.requests_failed}


def _pooled(runs: list[dict]) -> dict:
    """Several `_bench` results as one: every list pooled, rps averaged, failures summed."""
    pooled = {k: [x for r in runs for x in r[k]] for k, v in runs[0].items() if isinstance(v, list)}
    return {**pooled, "rps": sum(r["rps"] for r in runs) / len(runs), "failed": sum(r["failed"] for r in runs)}


async def _open_streams(url: str, n: int, hold: float) -> int:
    """Open `n` streams at once through the gateway; return how many got their response head."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        heads = 0

        async def one() -> None:
            nonlocal heads
            async with session.post(url + "/api/generate", json={"model": "stub-model", "prompt": "hi"},
                                    timeout=aiohttp.ClientTimeout(total=hold + 60)) as resp:
                heads += 1
                await resp.read()

        tasks = [asyncio.ensure_future(one()) for _ in range(n)]
        await asyncio.sleep(hold)
        result = heads
        await asyncio.gather(*tasks, return_exceptions=True)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests per run at concurrency 1")
    parser.add_argument("--requests-64", type=int, default=3000, help="measured requests per run at concurrency 64")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--streams", type=int, default=1000, help="open streams for the RSS figure")
    parser.add_argument("--flat", type=int, default=20000, help="requests for the RSS-over-time figure")
    parser.add_argument("--floor", action="store_true",
                        help="also run a raw byte relay (benchmarks/_relay.py: no HTTP) in the same alternation: "
                             "the floor of two extra loopback hops on this machine")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sollama-gw-bench-"))
    os.environ["SOLLAMA_HOME"] = str(work / "client")
    lines = []
    with stub_process(*STUB_ARGS) as (_stub, port), gateway_process(port, work / "gw") as (gw, gw_url), \
            relay_process(port, args.floor) as relay_url:
        direct_url = f"http://127.0.0.1:{port}"
        time.sleep(1.0)
        rss_idle = _rss_mb(gw.pid)
        figures = {}
        cpu_ms: dict[int, float] = {}
        targets = [("direct", direct_url), ("gateway", gw_url)] + ([("relay", relay_url)] if relay_url else [])
        for conc, n in ((1, args.requests), (64, args.requests_64)):
            runs: dict[str, list[dict]] = {name: [] for name, _ in targets}
            spent, served = 0.0, 0
            for trial in range(args.trials):
                for name, url in targets:
                    before = _cpu_s(gw.pid)
                    runs[name].append(_bench(url, conc, n, work / f"{name}-{conc}-{trial}.db"))
                    if name == "gateway":
                        spent += _cpu_s(gw.pid) - before
                        served += n + min(32, n // 10) + 1  # measured + warm-up + the preflight
            figures[conc] = {k: _pooled(v) for k, v in runs.items()}
            cpu_ms[conc] = spent / served * 1000
        rss_after = _rss_mb(gw.pid)
        flat = [(0, rss_after)]
        done, step = 0, max(1, args.flat // 4)
        while done < args.flat:
            _bench(gw_url, 64, step, work / f"flat-{done}.db")
            done += step
            flat.append((done, _rss_mb(gw.pid)))
    with stub_process("--tokens", "2", "--first-token-delay", "8", "--token-delay", "0.01") as (_s, slow_port), \
            gateway_process(slow_port, work / "gw-streams") as (gw2, gw2_url):
        time.sleep(0.5)
        base = _rss_mb(gw2.pid)
        rss_streams: list[float] = []

        async def measure() -> int:
            task = asyncio.ensure_future(_open_streams(gw2_url, args.streams, 5.0))
            await asyncio.sleep(4.5)
            rss_streams.append(_rss_mb(gw2.pid))
            return await task

        heads = asyncio.run(measure())

    def ms(x: float) -> str:
        return f"{x * 1000:+.2f} ms"

    for conc in (1, 64):
        d, g = figures[conc]["direct"], figures[conc]["gateway"]
        lines.append(f"c={conc:<3} TTFT p50 direct {_pct(d['ttft'], .5) * 1000:.2f} ms, gateway "
                     f"{_pct(g['ttft'], .5) * 1000:.2f} ms → added {ms(_pct(g['ttft'], .5) - _pct(d['ttft'], .5))}; "
                     f"p99 added {ms(_pct(g['ttft'], .99) - _pct(d['ttft'], .99))}")
        lines.append(f"      ITL p99 direct {_pct(d['itl'], .99) * 1000:.2f} ms, gateway "
                     f"{_pct(g['itl'], .99) * 1000:.2f} ms "
                     f"→ added {ms(_pct(g['itl'], .99) - _pct(d['itl'], .99))}; throughput direct {d['rps']:.0f} "
                     f"req/s, gateway {g['rps']:.0f} req/s = {g['rps'] / d['rps'] * 100:.0f}% "
                     f"(failed: direct {d['failed']}, gateway {g['failed']})")
        if "relay" in figures[conc]:
            r = figures[conc]["relay"]
            lines.append(f"      floor (raw byte relay, no HTTP): TTFT p50 added "
                         f"{ms(_pct(r['ttft'], .5) - _pct(d['ttft'], .5))}, p99 added "
                         f"{ms(_pct(r['ttft'], .99) - _pct(d['ttft'], .99))}; ITL p99 added "
                         f"{ms(_pct(r['itl'], .99) - _pct(d['itl'], .99))}; "
                         f"throughput {r['rps'] / d['rps'] * 100:.0f}%")
    lines.append(f"gateway CPU per request (user+sys, 16-chunk stream): {cpu_ms[1]:.2f} ms at c=1, "
                 f"{cpu_ms[64]:.2f} ms at c=64")
    lines.append(f"gateway RSS: idle {rss_idle:.1f} MiB; after the c=1/c=64 runs {rss_after:.1f} MiB; over "
                 f"{args.flat} more requests: " + ", ".join(f"{n}: {r:.1f}" for n, r in flat) + " MiB")
    lines.append(f"gateway RSS with {heads} of {args.streams} streams open: {rss_streams[0]:.1f} MiB "
                 f"(idle {base:.1f} MiB)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
