"""Client overhead against a real Ollama daemon: median (E2EL − server total_duration) at concurrency 1.

    .venv/bin/python benchmarks/real_overhead.py [--host 127.0.0.1:11434] [-m smollm2:135m] [-n 20]

--host defaults to OLLAMA_HOST, else 127.0.0.1:11434; without a daemon there the script says so and exits 0.

E2EL ends at the last chunk with text, total_duration at the server's final chunk, so the difference is the
time outside the server's own clock (HTTP, parsing, the event loop). Target: ≤ 2 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("OLLAMA_HOST") or "127.0.0.1:11434")
    parser.add_argument("-m", "--model", default="smollm2:135m")
    parser.add_argument("-n", "--requests", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    from ollama_ops.core.bench.load import LoadSpec
    from ollama_ops.core.hosts import parse_host
    from ollama_ops.edges.store import Store
    from ollama_ops.services.bench.config import BenchConfig
    from ollama_ops.services.bench.run import run_bench

    url = parse_host(args.host).base_url
    db = Path(tempfile.mkdtemp(prefix="sollama-overhead-")) / "h.db"
    config = BenchConfig(model=args.model, base_url=url, host=args.host, max_tokens=args.max_tokens,
                         load=LoadSpec(concurrency=1, requests=args.requests, warmup=2), timeout=120,
                         store_path=db, options={"temperature": 0})
    from ollama_ops.errors import ModelNotFound, ServerUnreachable

    try:
        result = run_bench(config)
    except (ServerUnreachable, ModelNotFound) as exc:
        print(f"skipped: {exc.one_line()}")
        return
    with Store(db) as store:
        rows = [r for r in store.requests(result.run_id) if r.ok and r.queue_s is not None]
    queue = [r.queue_s for r in rows]
    e2el = [r.e2el for r in rows]
    print(f"{args.model} @ {args.host} (Ollama {result.ollama_version}), concurrency 1, {len(rows)} requests, "
          f"max_tokens {args.max_tokens}")
    print(f"median E2EL {statistics.median(e2el) * 1000:.1f} ms; median (E2EL − total_duration) "
          f"{statistics.median(queue) * 1000:.2f} ms (min {min(queue) * 1000:.2f}, max {max(queue) * 1000:.2f})")


if __name__ == "__main__":
    main()
