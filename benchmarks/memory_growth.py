"""Memory of a long bench: peak RSS of an N-request run against the stub, RSS at 2k / 5k / 10k / 30k requests, and
the slope of RSS over the requests after warm-up (bytes per request).

    .venv/bin/python benchmarks/memory_growth.py [--requests 10000] [--concurrency 16] [--warm 2000]
    .venv/bin/python benchmarks/memory_growth.py --requests 15000 --tracemalloc 5000 15000

Target: peak RSS < 150 MB and no growth with the number of requests (slope ≈ 0 beyond noise). Rows go to SQLite
as the run goes and are dropped; the summary keeps exact samples only up to a bound per metric and then a
fixed-size histogram (`core/bench/quantiles.py`), the chart series is thinned to a few thousand points, and SQLite's
page cache is capped at 2 MiB. RSS is sampled at every progress report (every 0.25 s), so a mark reads the first
sample at or past it (its actual request count is shown). `--tracemalloc A B` diffs Python heap snapshots taken at
A and B requests and prints the biggest growers (it slows the run several times; not for the RSS figures).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from benchmarks._stub import stub_process  # noqa: E402

MARKS = (1000, 2000, 5000, 10_000, 15_000, 30_000, 100_000, 300_000)


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of RSS (bytes) over requests."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warm", type=int, default=None,
                        help="requests before the slope is measured (default 10,000, or half a shorter run): by "
                             "then the sketches hold histograms and SQLite's 2 MiB page cache is full")
    parser.add_argument("--tracemalloc", type=int, nargs=2, metavar=("A", "B"),
                        help="diff Python heap snapshots taken at A and B requests")
    args = parser.parse_args()
    if args.warm is None:
        args.warm = 10_000 if args.requests >= 20_000 else args.requests // 2
    from ollama_ops.core.bench.load import LoadSpec
    from ollama_ops.services.bench.config import BenchConfig
    from ollama_ops.services.bench.run import run_bench

    me = psutil.Process()
    marks = sorted({m for m in MARKS if m <= args.requests} | {args.requests})
    samples: list[tuple[int, float]] = []  # (requests done, RSS bytes), one per progress report
    snaps: dict[int, object] = {}
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(1)

    def on_progress(p) -> None:  # type: ignore[no-untyped-def]
        if p.phase != "run" or len(samples) > 100_000:
            return
        samples.append((p.done, float(me.memory_info().rss)))
        if args.tracemalloc:
            for mark in args.tracemalloc:
                if p.done >= mark and mark not in snaps:
                    snaps[mark] = tracemalloc.take_snapshot()

    db = Path(tempfile.mkdtemp(prefix="sollama-memory-")) / "h.db"
    before = me.memory_info().rss / 2**20
    with stub_process("--tokens", "16") as (_proc, port):
        config = BenchConfig(model="stub-model", base_url=f"http://127.0.0.1:{port}", host=f"127.0.0.1:{port}",
                             load=LoadSpec(concurrency=args.concurrency, requests=args.requests, warmup=0),
                             prompts="long", max_tokens=64, timeout=30, store_path=db)
        t0 = time.perf_counter()
        result = run_bench(config, on_progress=on_progress)
        wall = time.perf_counter() - t0
    after = me.memory_info().rss / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = result.summary
    print(f"{s.requests_ok} ok / {s.requests_failed} failed at concurrency {args.concurrency} in {wall:.1f} s "
          f"({s.request_throughput:.0f} req/s); history {db.stat().st_size / 2**20:.1f} MiB; "
          f"chart series {len(result.series.e2el_s)} points")
    print(f"RSS before the run: {before:.1f} MiB")
    for mark in marks:
        hit = next(((done, rss) for done, rss in samples if done >= mark), None)
        if hit is not None:
            print(f"RSS after {mark:>7} requests: {hit[1] / 2**20:.1f} MiB (sampled at {hit[0]})")
    print(f"RSS after the summary: {after:.1f} MiB")
    print(f"peak RSS (ru_maxrss): {peak:.1f} MiB")
    for start in sorted({2000, args.warm}):
        warm = [(d, r) for d, r in samples if d >= start]
        if len(warm) >= 2:
            span = warm[-1][0] - warm[0][0]
            print(f"RSS slope after {start} requests: {slope(warm):.1f} bytes/request (least squares over "
                  f"{len(warm)} samples, {warm[0][0]}..{warm[-1][0]}); end-to-end "
                  f"{(warm[-1][1] - warm[0][1]) / span if span else float('nan'):.1f} bytes/request")
    if args.tracemalloc and len(snaps) == 2:
        a, b = (snaps[m] for m in args.tracemalloc)
        diff = b.compare_to(a, "lineno")  # type: ignore[attr-defined]
        total = sum(stat.size_diff for stat in diff)
        print(f"Python heap growth {args.tracemalloc[0]} → {args.tracemalloc[1]} requests: {total / 1024:+.1f} KiB "
              f"(RSS growth beyond it is native: SQLite's page cache); top 12 lines:")
        for stat in diff[:12]:
            frame = stat.traceback[0]
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {frame.filename}:{frame.lineno}")


if __name__ == "__main__":
    main()
