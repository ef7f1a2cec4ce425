"""Native vs OpenAI API on the same synthetic workload against a real Ollama: output tok/s side by side.

    .venv/bin/python benchmarks/api_agreement.py --host 127.0.0.1:11434 [--model smollm2:135m] [--rounds 3]
        [--prompt-tokens 64] [--output-tokens 32] [--requests 4]

Alternates `--api generate` and `--api openai-chat` (same seed, same prompts, same lengths by the server's count,
temperature 0) for `--rounds` rounds and prints each run's output tok/s and median TPOT, then each API's median and
the spread between its own runs (the run-to-run noise), so the gap between the APIs can be read against it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt-tokens", default="64")
    parser.add_argument("--output-tokens", default="32")
    parser.add_argument("--requests", type=int, default=4)
    args = parser.parse_args()
    from ollama_ops.config import load_settings
    from ollama_ops.services.bench.config import build_config
    from ollama_ops.services.bench.run import run_bench

    settings = load_settings(flags={"server.host": args.host})
    db = Path(tempfile.mkdtemp(prefix="sollama-agree-")) / "h.db"
    rates: dict[str, list[float]] = {"generate": [], "openai-chat": []}
    for r in range(args.rounds):
        for api in rates:
            config = build_config(settings, model=args.model, api=api, requests=args.requests, warmup=1,
                                  prompt_tokens=args.prompt_tokens, output_tokens=args.output_tokens,
                                  options=["temperature=0"], seed=r)
            config.store_path = db
            result = run_bench(config)
            s = result.summary
            rates[api].append(s.output_throughput)
            tpot = s.tpot.p50 * 1e3 if s.tpot else float("nan")
            print(f"round {r + 1} {api:>12}: {s.output_throughput:7.2f} output tok/s, TPOT p50 {tpot:6.2f} ms, "
                  f"{s.output_tokens} tokens ({s.requests_ok} ok)", flush=True)
    for api, values in rates.items():
        spread = (max(values) - min(values)) / statistics.median(values) if values and statistics.median(values) \
            else float("nan")
        print(f"{api:>12}: median {statistics.median(values):.2f} tok/s, run-to-run spread {spread:.0%}")
    gap = statistics.median(rates["openai-chat"]) / statistics.median(rates["generate"]) - 1
    print(f"openai-chat vs generate: {gap:+.1%}")


if __name__ == "__main__":
    main()
