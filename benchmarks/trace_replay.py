"""Trace replay fidelity: how late `sollama bench --trace` sends each request against the trace's own timeline.

    .venv/bin/python benchmarks/trace_replay.py [--requests 200] [--interval-ms 5] [--speed 1] [--api generate]

A trace of N requests (evenly spaced, synthetic prompt lengths) is replayed against the stub (its own process and
core); the send lag of each request is its socket write (the wire client's send time) minus the time the timeline
scheduled it. Prints the lag's p50 / p99 / max in ms. Target: p99 ≤ 1 ms at 200 requests.

Each trial also prints the load average and the client's involuntary context switches during it: a lag of a few ms
that comes with them is the kernel giving the client's core to another process (its time slice), not the event
loop; on a quiet machine there are next to none.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._stub import cpus, pin_self, stub_process  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--api", default="generate")
    args = parser.parse_args()
    from ollama_ops.core.bench.load import LoadSpec
    from ollama_ops.core.bench.workload import parse_trace
    from ollama_ops.services.bench.config import BenchConfig
    from ollama_ops.services.bench.run import run_bench

    client_cpu, stub_cpu = cpus()
    pin_self(client_cpu)
    tmp = tempfile.mkdtemp(prefix="sollama-trace-")
    lines = [json.dumps({"timestamp": i * args.interval_ms / 1000, "prompt_tokens": 32 + i % 16,
                         "output_tokens": args.tokens}) for i in range(args.requests)]
    entries = parse_trace("\n".join(lines), "trace")
    with stub_process("--tokens", str(args.tokens), "--token-delay", "0.002", cpu=stub_cpu) as (_, port):
        print(f"api {args.api}; {args.requests} requests every {args.interval_ms:g} ms at speed {args.speed:g}; "
              f"client on cpu {client_cpu}, stub on cpu {stub_cpu}")
        for trial in range(args.trials):
            config = BenchConfig(model="stub-model", base_url=f"http://127.0.0.1:{port}", host=f"127.0.0.1:{port}",
                                 load=LoadSpec(requests=args.requests, warmup=0), max_tokens=None, timeout=30,
                                 store_path=f"{tmp}/t{trial}.db", api=args.api,  # type: ignore[arg-type]
                                 trace=entries, trace_name="trace", speed=args.speed)
            switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
            result = run_bench(config)
            switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switches
            lag = result.send_lag
            assert lag is not None
            print(f"trial {trial + 1}: {result.summary.requests_ok} ok; send lag p50 {lag.p50 * 1e3:.3f} ms, "
                  f"p99 {lag.p99 * 1e3:.3f} ms, max {lag.max * 1e3:.3f} ms; load average "
                  f"{os.getloadavg()[0]:.2f}, {switches} involuntary context switches", flush=True)


if __name__ == "__main__":
    main()
