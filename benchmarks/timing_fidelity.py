"""Timing fidelity: TTFT and TPOT medians measured by `sollama bench` vs the stub's script.

    .venv/bin/python benchmarks/timing_fidelity.py [--requests 64] [--concurrency 1 32]

The stub (its own process) sends the first token 80 ms after a request and then one every 10 ms. Target: the
medians within 1 ms of 80 ms and 10 ms at concurrency 1 and 32. The stub's own scheduling error is part of what
is measured, so the stub's clock (its reported prompt_eval and eval durations) is printed next to it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._stub import stub_process  # noqa: E402

FIRST, STEP, TOKENS = 0.080, 0.010, 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    from ollama_ops.edges.store import Store
    from ollama_ops.services.bench import BenchConfig, run_bench
    from ollama_ops.services.bench_runner import LoadSpec

    db = Path(tempfile.mkdtemp(prefix="sollama-fidelity-")) / "h.db"
    with stub_process("--tokens", str(TOKENS), "--first-token-delay", str(FIRST), "--token-delay", str(STEP)) as (
            _proc, port):
        print(f"script: first token {FIRST * 1000:.0f} ms, then {STEP * 1000:.0f} ms per token, {TOKENS} tokens")
        print(f"{'conc':>5} {'n':>5} {'TTFT p50 ms':>12} {'Δ ms':>7} {'TPOT p50 ms':>12} {'Δ ms':>7} "
              f"{'ITL p50 ms':>11} {'stub TTFT p50':>14}")
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
            print(f"{c:>5} {s.requests_ok:>5} {ttft * 1000:>12.2f} {(ttft - FIRST) * 1000:>+7.2f} "
                  f"{tpot * 1000:>12.3f} {(tpot - STEP) * 1000:>+7.3f} {itl * 1000:>11.3f} "
                  f"{server_ttft * 1000:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
