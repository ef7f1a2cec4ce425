"""`sollama serve --workers N`: N worker processes on one port, each a replica of the fleet.

The parent binds the port (SO_REUSEPORT, never listening: it only holds the address and reports a taken one);
each worker listens on its own SO_REUSEPORT socket on that port, and the kernel spreads new connections across
them by hashing each connection's addresses (an even spread, where one shared socket would let whichever worker
wakes first take a whole burst). Only processes of the same user can join such a port. The slots, the limit
windows and key revocations live in the shared state (`gateway.state`, Redis), so the workers together keep each
upstream's slots and each key's limits exactly as one process would; that is why N > 1 needs it.

The parent supervises: SIGTERM or SIGINT is forwarded once to every worker (each drains as a single gateway does),
a worker that exits on its own stops the others (the parent then fails with its exit code), and workers left
running past the drain timeout are killed. Workers run in their own process group, so a Ctrl-C on the terminal
reaches them once, through the parent; a worker whose parent is gone stops itself.

`/metrics` shows the whole gateway, whichever worker answers: the workers keep their metrics in
prometheus_client's multiprocess files (gateway/metrics.py) in a private directory (0700) under the state dir,
`gateway-metrics/<host>_<port>`, which the parent empties before the workers start and removes when they are gone.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ollama_ops import paths
from ollama_ops.errors import SollamaError
from ollama_ops.gateway.settings import GatewayConfig

KILL_GRACE = 5.0  # seconds past the drain timeout before a worker is killed
LISTEN_TIMEOUT = 60.0  # seconds for every worker to be listening before the gateway counts as failed


def _watch_parent(parent: int) -> None:
    """Stop this worker (SIGTERM: it drains) once its parent is gone."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


Worker = Callable[[GatewayConfig, Callable[[], None]], list[int]]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir(config: GatewayConfig) -> Path:
    """The workers' prometheus files for this listen address (one gateway per address at a time: it is bound)."""
    name = re.sub(r"[^A-Za-z0-9.-]", "_", f"{config.listen_host}_{config.listen_port}")
    return paths.state_dir() / "gateway-metrics" / name


@contextlib.contextmanager
def shared_metrics(config: GatewayConfig) -> Iterator[Path]:
    """A fresh private directory for the workers' metric files, named in the environment the workers are spawned
    with (prometheus_client reads it when imported) and in `config.metrics_dir`; removed afterwards."""
    path = metrics_dir(config)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)  # files of an earlier run that was killed
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(path)
    config.metrics_dir = path
    try:
        yield path
    finally:
        config.metrics_dir = None
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def _worker_main(worker: Worker, config: GatewayConfig, parent: int, listening: Any) -> None:
    os.setpgid(0, 0)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    signals = worker(config, listening.set)
    raise SystemExit(130 if signal.SIGINT in signals else 0)


def supervise(config: GatewayConfig, workers: int, worker: Worker, *,
              on_ready: Callable[[], Any] | None = None) -> list[int]:
    """Run `workers` processes of `worker` (a module-level function: it is pickled by name into each spawned process;
    it calls its second argument once its socket listens) on config's listen address until a signal stops them;
    returns the signals received. `on_ready` runs once every worker listens, so no connection made after it lands
    on a port with only some of them. Raises SollamaError when a worker exits on its own or does not listen within
    LISTEN_TIMEOUT (the others are stopped first). The workers share one metrics directory (`shared_metrics`)."""
    with shared_metrics(config):
        return _supervise(config, workers, worker, on_ready)


def _supervise(config: GatewayConfig, workers: int, worker: Worker, on_ready: Callable[[], Any] | None) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    received: list[int] = []

    def handler(sig: int, _frame: Any) -> None:
        received.append(sig)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: list[Any] = []
    listening = [ctx.Event() for _ in range(workers)]
    failed: str | None = None
    try:
        for i in range(workers):
            proc = ctx.Process(target=_worker_main, args=(worker, config, os.getpid(), listening[i]),
                               name=f"sollama-gateway-worker-{i + 1}")
            proc.start()
            procs.append(proc)
        listen_by = time.monotonic() + LISTEN_TIMEOUT
        while not all(e.is_set() for e in listening) and not received and all(p.is_alive() for p in procs):
            if time.monotonic() > listen_by:
                late = next(p for p, e in zip(procs, listening, strict=True) if not e.is_set())
                failed = f"gateway worker {late.name} (pid {late.pid}) did not listen within {LISTEN_TIMEOUT:g} s"
                break
            multiprocessing.connection.wait([p.sentinel for p in procs], timeout=0.05)
        if on_ready is not None and failed is None and all(e.is_set() for e in listening):
            on_ready()
        deadline: float | None = None
        while any(p.is_alive() for p in procs):
            if deadline is None and (failed or received or any(not p.is_alive() for p in procs)):
                if not received and failed is None:
                    dead = next(p for p in procs if not p.is_alive())
                    failed = f"gateway worker {dead.name} (pid {dead.pid}) exited with code {dead.exitcode}"
                sig = received[0] if received else signal.SIGTERM
                for p in procs:
                    if p.is_alive():
                        os.kill(p.pid, sig)  # our unreaped child: its pid cannot have been reused
                deadline = time.monotonic() + config.drain_timeout + KILL_GRACE
            if deadline is not None and time.monotonic() > deadline:
                for p in procs:
                    if p.is_alive():
                        p.kill()
                deadline = float("inf")
            multiprocessing.connection.wait([p.sentinel for p in procs if p.is_alive()], timeout=0.2)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(timeout=5)
        for sig, old in previous.items():
            signal.signal(sig, old)
    if failed is not None:
        raise SollamaError(f"{failed}; stopped the other workers")
    return received
