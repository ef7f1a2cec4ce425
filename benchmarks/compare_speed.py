"""Speed of the regression gate's statistics: the bootstrap interval of 2 × N per-request samples.

    .venv/bin/python benchmarks/compare_speed.py [--samples 1000] [--runs 5]

`report --compare` computes one interval per metric (2,000 resamples each); the gate should stay well under a
second for runs of a thousand requests. Prints the median time of each statistic over --runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ollama_ops.core.stats import bootstrap_change, bootstrap_ratio_change  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(5)
    base = [0.1 * rng.lognormvariate(0, 0.3) for _ in range(args.samples)]
    cand = [0.1 * rng.lognormvariate(0, 0.3) for _ in range(args.samples)]
    tokens = [float(rng.randint(8, 64)) for _ in range(args.samples)]
    cases = {"median": lambda: bootstrap_change(base, cand, "median"),
             "p90": lambda: bootstrap_change(base, cand, "p90"),
             "ratio (tok/s)": lambda: bootstrap_ratio_change(tokens, base, tokens, cand)}
    for name, case in cases.items():
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            case()
            times.append(time.perf_counter() - start)
        print(f"2x{args.samples} samples, {name:>13}: median {statistics.median(times) * 1000:7.1f} ms "
              f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")


if __name__ == "__main__":
    main()
