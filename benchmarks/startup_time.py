"""Start-up cost of the CLI, side by side with its floor (`import typer, rich.console`) in one run.

DESIGN.md's goal: `sollama --help` within 1.3x of `python -c "import typer, rich.console"`.
Run: .venv/bin/python benchmarks/startup_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import typer, rich.console": [sys.executable, "-c", "import typer, rich.console"],
    "sollama --help": [sys.executable, "-m", "ollama_ops", "--help"],
    "sollama --version": [sys.executable, "-m", "ollama_ops", "--version"],
    "sollama config show --json": [sys.executable, "-m", "ollama_ops", "config", "show", "--json"],
    # what a CI loop calls; nothing listens on port 1, so it exits 4 after one refused connection
    "sollama status --json (down)": [sys.executable, "-m", "ollama_ops", "--host", "127.0.0.1:1", "status",
                                     "--json"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):  # interleaved, so machine noise hits every case alike
        for name, cmd in CASES.items():
            start = time.perf_counter()
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if done.returncode not in (0, 4):
                raise SystemExit(f"{name}: exit {done.returncode}")
            samples[name].append(time.perf_counter() - start)
    floor = statistics.median(samples["import typer, rich.console"])
    print(f"{'command':<30} {'median ms':>10} {'vs typer+rich':>14}")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"{name:<30} {med * 1000:>10.1f} {med / floor:>13.2f}x")
    ratio = statistics.median(samples["sollama --help"]) / floor
    print(f"\nsollama --help / (typer + rich.console) = {ratio:.2f}x (goal <= 1.30x)")


if __name__ == "__main__":
    main()
