"""The gateway's upstream transport, picked by this benchmark: the same `sollama bench` load (concurrency 64, 16-chunk
streams from the stub) direct to the stub, and through two `sollama serve` processes that differ only in the
streaming layer's transport for http:// (`client.stream`: the wire transport, the default, or aiohttp, forced with
SOLLAMA_STREAM_TRANSPORT=aiohttp). Runs alternate trial by trial so drift on a shared machine hits all three.

    .venv/bin/python benchmarks/upstream_transport.py [--requests 2000] [--trials 2]

Prints, per transport: added TTFT p50/p99 and inter-chunk gap p99, throughput as a share of direct, and the
gateway's CPU (user+sys) per request, the figure that decides on a machine where the load generator, the stub and
the gateway share the cores.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._stub import stub_process  # noqa: E402
from benchmarks.gateway_overhead import STUB_ARGS, _bench, _cpu_s, _pct, _pooled, gateway_process  # noqa: E402

TRANSPORTS = ("wire", "aiohttp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per run")
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sollama-transport-bench-"))
    os.environ["SOLLAMA_HOME"] = str(work / "client")
    with contextlib.ExitStack() as stack:
        _stub, port = stack.enter_context(stub_process(*STUB_ARGS))
        gateways = {}
        for name in TRANSPORTS:
            os.environ["SOLLAMA_STREAM_TRANSPORT"] = name
            gateways[name] = stack.enter_context(gateway_process(port, work / name))
        os.environ.pop("SOLLAMA_STREAM_TRANSPORT", None)
        runs: dict[str, list[dict]] = {"direct": [], **{name: [] for name in TRANSPORTS}}
        cpu = dict.fromkeys(TRANSPORTS, 0.0)
        for trial in range(args.trials):
            for name in runs:
                url = f"http://127.0.0.1:{port}" if name == "direct" else gateways[name][1]
                before = _cpu_s(gateways[name][0].pid) if name != "direct" else 0.0
                runs[name].append(_bench(url, 64, args.requests, work / f"{name}-{trial}.db"))
                if name != "direct":
                    cpu[name] += _cpu_s(gateways[name][0].pid) - before
    direct = _pooled(runs["direct"])
    served = args.trials * (args.requests + min(32, args.requests // 10) + 1)
    for name in TRANSPORTS:
        g = _pooled(runs[name])
        print(f"{name:8} c=64: TTFT added p50 {(_pct(g['ttft'], .5) - _pct(direct['ttft'], .5)) * 1000:+.2f} ms, "
              f"p99 {(_pct(g['ttft'], .99) - _pct(direct['ttft'], .99)) * 1000:+.2f} ms; ITL p99 added "
              f"{(_pct(g['itl'], .99) - _pct(direct['itl'], .99)) * 1000:+.2f} ms; {g['rps']:.0f} of "
              f"{direct['rps']:.0f} req/s direct = {g['rps'] / direct['rps'] * 100:.0f}%; gateway CPU "
              f"{cpu[name] / served * 1000:.3f} ms per request (failed: {g['failed']})")


if __name__ == "__main__":
    main()
