"""What `sollama serve` adds to end-to-end latency against the real Ollama with SmolLM2-135M (issue 11).

    .venv/bin/python benchmarks/gateway_real.py [--host 127.0.0.1:11434] [-m smollm2:135m] [--requests 40]
                                                [--trials 3] [--max-tokens 16]

Without --host it starts its own `ollama serve` on a free loopback port, with its own HOME and OLLAMA_MODELS set to
the cached model store (the binary `make ollama` builds and the SmolLM2 store `make model` fills; found and started
by tests/conftest.py's helpers); without a binary it says so and exits 0. In front of the daemon it starts
`sollama serve` as benchmarks/gateway_overhead.py does, with one slot (the default for a daemon with
OLLAMA_NUM_PARALLEL=1) and auth on: a key made with `sollama keys create` in the gateway's own SOLLAMA_HOME, which
the bench sends as `Authorization: Bearer`; a request without it must get 401 before anything is measured.

The load is `sollama bench`'s runner at concurrency 1: one fixed prompt, fixed max_tokens, temperature 0 and a
fixed seed (the same tokens every time), after a warm-up through the gateway that loads the model. Direct and
gateway runs alternate trial by trial, so drift on a shared machine hits both. Every process it started is
stopped by its PID.

Prints, direct / gateway / added: median E2EL, median (E2EL − total_duration), TTFT p50, median total_duration,
and the queue wait the gateway reported (X-Queue-Wait-Ms); and the load average at the end.

The figure for the goal ("on the real daemon: added E2EL median ≤ 2 ms") is the added median of (E2EL −
total_duration). total_duration is the server's own clock for the request, in Ollama's final chunk, which the
gateway passes through byte for byte; subtracting it request by request takes out the generation time, which on
CPU varies by milliseconds from one request to the next (more than the gateway adds), and leaves the time outside
the server: HTTP, parsing, the event loop and, through the gateway, its hop both ways. The plain E2EL difference
is printed too; it carries the server's own variance, so it converges only over many requests, and on a loaded
machine (other processes taking the runner's cores) it is mostly that variance. The total_duration line shows
whether the gateway's own CPU use slows generation (on 2 cores the runner's threads share them with the gateway and
the client): that cost is inside the server's clock, so the goal figure does not see it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gateway_overhead import _bench, _pooled, gateway_process, sollama_argv  # noqa: E402

PROMPT = "Count from one to twenty, separated by commas."
OPTIONS = {"temperature": 0, "seed": 1}
FIGURES = (("e2el", "median E2EL"), ("server_gap", "median (E2EL − total_duration)"), ("ttft", "TTFT p50"),
           ("server_total", "median total_duration (the server's own clock)"),
           ("gateway_wait", "gateway queue wait p50"))


def added(direct: dict, gateway: dict) -> dict[str, tuple[float, float, float] | None]:
    """For each figure in FIGURES: (median direct, median through the gateway, gateway − direct), in seconds; None
    when either side has no values (a direct run has no gateway queue wait: its direct side counts as 0)."""
    out: dict[str, tuple[float, float, float] | None] = {}
    for key, _label in FIGURES:
        d = direct.get(key) or ([0.0] if key == "gateway_wait" else [])
        g = gateway.get(key) or []
        if not d or not g:
            out[key] = None
            continue
        md, mg = statistics.median(d), statistics.median(g)
        out[key] = (md, mg, mg - md)
    return out


def render(figures: dict[str, tuple[float, float, float] | None]) -> list[str]:
    """One line per figure: direct, gateway, added, in ms."""
    lines = []
    for key, label in FIGURES:
        f = figures.get(key)
        if f is None:
            lines.append(f"{label}: no values")
        else:
            lines.append(f"{label}: direct {f[0] * 1000:.2f} ms, gateway {f[1] * 1000:.2f} ms "
                         f"→ added {f[2] * 1000:+.2f} ms")
    return lines


@contextlib.contextmanager
def own_daemon(work: Path, model: str) -> Iterator[str | None]:
    """This script's own `ollama serve` (loopback, free port, the cached model store, its own HOME), serving
    `model`; yields its URL, or None when there is no binary; stops it by its PID."""
    from tests.conftest import TOOLS, ensure_test_model, ollama_binary, start_ollama, stop_process

    binary = ollama_binary()
    if binary is None:
        yield None
        return
    proc, host = start_ollama(binary, TOOLS / "test-ollama-models", work / "ollama-home", work / "ollama.log")
    try:
        ensure_test_model(f"http://{host}", model)
        yield f"http://{host}"
    finally:
        stop_process(proc)


def create_key(home: Path) -> str:
    """A key made by `sollama keys create` in the gateway's SOLLAMA_HOME (auth `auto` then requires keys)."""
    done = subprocess.run([*sollama_argv(), "keys", "create", "bench", "--json"], capture_output=True, text=True,
                          env={**os.environ, "SOLLAMA_HOME": str(home)}, stdin=subprocess.DEVNULL, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"sollama keys create failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)["secret"]


def check_auth(url: str, key: str) -> None:
    """The gateway refuses a request without the key and accepts it with the key: the measured path is the real one."""
    import httpx

    without = httpx.get(url + "/api/tags", timeout=10).status_code
    with_key = httpx.get(url + "/api/tags", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code
    if (without, with_key) != (401, 200):
        raise RuntimeError(f"gateway auth is not on: /api/tags gave {without} without the key, {with_key} with it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="an Ollama daemon to use instead of starting one")
    parser.add_argument("-m", "--model", default="smollm2:135m")
    parser.add_argument("--requests", type=int, default=40, help="measured requests per run")
    parser.add_argument("--trials", type=int, default=3, help="direct/gateway run pairs")
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sollama-gw-real-"))
    os.environ["SOLLAMA_HOME"] = str(work / "client")
    (prompts := work / "prompt.txt").write_text(PROMPT + "\n")
    load = {"model": args.model, "max_tokens": args.max_tokens, "prompts": str(prompts), "options": OPTIONS,
            "timeout": 120}
    with contextlib.ExitStack() as stack:
        if args.host:
            from ollama_ops.core.hosts import parse_host

            direct_url: str | None = parse_host(args.host).base_url
        else:
            direct_url = stack.enter_context(own_daemon(work, args.model))
        if direct_url is None:
            print("skipped: no ollama binary (make ollama model, or --host)")
            return
        key = create_key(work / "gw")
        _gw, gw_url = stack.enter_context(gateway_process(direct_url, work / "gw", slots=1))
        check_auth(gw_url, key)
        auth = {"Authorization": f"Bearer {key}"}
        t0 = time.monotonic()
        for name, url, headers in (("gateway", gw_url, auth), ("direct", direct_url, None)):
            # loads the model and opens the gateway's upstream connection; not measured
            _bench(url, 1, 3, work / f"warmup-{name}.db", warmup=1, headers=headers, **load)
        runs: dict[str, list[dict]] = {"direct": [], "gateway": []}
        for trial in range(args.trials):
            for name, url, headers in (("direct", direct_url, None), ("gateway", gw_url, auth)):
                runs[name].append(_bench(url, 1, args.requests, work / f"{name}-{trial}.db", warmup=2,
                                         headers=headers, **load))
        wall = time.monotonic() - t0
    direct, gateway = _pooled(runs["direct"]), _pooled(runs["gateway"])
    where = args.host or "own daemon"
    print(f"{args.model} @ {where}, concurrency 1, max_tokens {args.max_tokens}, {args.trials} trials × "
          f"{args.requests} requests each way ({len(direct['e2el'])} direct, {len(gateway['e2el'])} gateway; "
          f"failed: direct {direct['failed']}, gateway {gateway['failed']}), {wall:.0f} s, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("\n".join(render(added(direct, gateway))))
    print("goal (issue 11): added median (E2EL − total_duration) ≤ 2 ms")


if __name__ == "__main__":
    main()
