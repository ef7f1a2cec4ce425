"""Memory of a long bench: peak RSS of a 10,000-request run against the stub, and RSS at 2k / 5k / 10k requests.

    .venv/bin/python benchmarks/memory_growth.py [--requests 10000] [--concurrency 16]

Target: peak RSS < 150 MB and no growth with the number of requests. Rows go to SQLite as the run goes and are
dropped; what stays is ~110 bytes of float samples per request (exact percentiles need every sample) plus
SQLite's page cache, which grows with the file up to its 2 MiB cap.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    from ollama_ops.services.bench import BenchConfig, run_bench
    from ollama_ops.services.bench_runner import LoadSpec

    me = psutil.Process()
    marks = sorted({m for m in (1000, 2000, 5000, args.requests) if m <= args.requests})
    seen: dict[int, float] = {}

    def on_progress(p) -> None:  # type: ignore[no-untyped-def]
        for mark in marks:
            if p.phase == "run" and p.done >= mark and mark not in seen:
                seen[mark] = me.memory_info().rss / 2**20

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
          f"({s.request_throughput:.0f} req/s); history {db.stat().st_size / 2**20:.1f} MiB")
    print(f"RSS before the run: {before:.1f} MiB")
    for mark in marks:
        print(f"RSS after {mark:>6} requests: {seen.get(mark, float('nan')):.1f} MiB")
    print(f"RSS after the summary (percentiles sort copies of every sample): {after:.1f} MiB")
    print(f"peak RSS (ru_maxrss): {peak:.1f} MiB")


if __name__ == "__main__":
    main()
