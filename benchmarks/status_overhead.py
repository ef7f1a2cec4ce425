"""`sollama status --json` against a healthy daemon, as a whole process, next to its floor: a bare
`python -c "import httpx; httpx.get(URL + '/api/version')"`. Goal: median ratio <= 1.5x.

    .venv/bin/python benchmarks/status_overhead.py [--host 127.0.0.1:11434] [--runs 21]

--host defaults to OLLAMA_HOST, else 127.0.0.1:11434; without a daemon answering there the script starts one (the
binary `sollama start` would use, on a free loopback port, its own HOME and models dir) and stops it again by its
PID. The two commands run in turn (A B A B ...) and the ratio is taken pair by pair, so a machine whose speed drifts
moves both. Wall time and CPU time (user + system of the child) are both reported; on a shared, loaded machine the
CPU ratio is the steadier one.

Bytecode: sollama's own modules are compiled first (`compileall`), as an installed package has them; with
PYTHONDONTWRITEBYTECODE set and no __pycache__, every run would compile ~60 modules from source (httpx, in
site-packages, always has its bytecode) and the ratio would measure the compiler.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/api/version", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def daemon(host: str | None) -> Iterator[str]:
    """The address of a healthy daemon: the one given, or one started here (and stopped by its PID)."""
    from ollama_ops.core.hosts import check_host

    if host and _answers(check_host(host).base_url):
        yield host
        return
    from ollama_ops.config import load_settings
    from ollama_ops.services.launch import find_binary

    binary = find_binary(load_settings())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    own = f"127.0.0.1:{port}"
    home = Path(tempfile.mkdtemp(prefix="sollama-status-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update({"HOME": str(home), "OLLAMA_HOST": own, "OLLAMA_MODELS": str(home / "models")})
    with open(home / "serve.log", "ab") as log:
        proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"http://{own}"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"could not start {binary} serve (see {home / 'serve.log'})")
            time.sleep(0.1)
        print(f"started {binary} serve at {own} (pid {proc.pid})")
        yield own
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one whole run; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.decode(errors='replace')[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("OLLAMA_HOST") or "127.0.0.1:11434")
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    compileall.compile_dir(str(ROOT / "ollama_ops"), quiet=1)
    sollama = Path(sys.executable).with_name("sollama")
    with daemon(args.host) as host:
        url = f"http://{host}"
        env = {**os.environ, "NO_COLOR": "1", "SOLLAMA_HOME": tempfile.mkdtemp(prefix="sollama-status-home-")}
        cases = {
            "httpx.get /api/version": [sys.executable, "-c", f"import httpx; httpx.get({url + '/api/version'!r})"],
            "sollama status --json": [str(sollama), "--host", host, "status", "--json"],
        }
        for cmd in cases.values():  # warm-up: caches, bytecode, the daemon's first answers
            timed(cmd, env)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, cmd in cases.items():
                samples[name].append(timed(cmd, env))
    base, ours = samples["httpx.get /api/version"], samples["sollama status --json"]
    print(f"{'command':<26} {'wall ms (median)':>17} {'cpu ms (median)':>16}")
    for name, values in samples.items():
        print(f"{name:<26} {statistics.median(w for w, _ in values) * 1000:>17.1f} "
              f"{statistics.median(c for _, c in values) * 1000:>16.1f}")
    wall = statistics.median(o[0] / b[0] for o, b in zip(ours, base, strict=True))
    cpu = statistics.median(o[1] / b[1] for o, b in zip(ours, base, strict=True) if b[1] > 0)
    print(f"\nstatus --json / bare httpx.get, pair by pair over {args.runs} runs: wall {wall:.2f}x, "
          f"cpu {cpu:.2f}x (goal <= 1.50x)")


if __name__ == "__main__":
    main()
