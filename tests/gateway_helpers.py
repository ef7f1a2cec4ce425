"""Shared pieces of the gateway tests: `sollama serve` as a real subprocess on a free loopback port (stopped by
its own PID), real `curl` for the wire-level cases, and keys made with the real `sollama keys`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port
from tests.lifecycle_helpers import wait_for


def sollama_argv() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "sollama"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "ollama_ops"]


@dataclass
class GatewayProc:
    url: str
    port: int
    proc: subprocess.Popen
    home: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def access_log(self) -> list[dict]:
        path = self.home / "state" / "logs" / "gateway.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal our own PID, wait; SIGKILL that PID only if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def env_for(home: Path, **settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLLAMA_GATEWAY_")}
    env.update({"SOLLAMA_HOME": str(home), "NO_COLOR": "1"})
    for key, value in settings.items():
        env[f"SOLLAMA_GATEWAY_{key.upper()}"] = str(value)
    return env


@contextlib.contextmanager
def gateway(upstream: str | None, home: Path, *args: str, **settings: object) -> Iterator[GatewayProc]:
    """`sollama serve` on a free loopback port against `upstream` (None: the configured upstreams, as a fleet
    replica); settings become SOLLAMA_GATEWAY_* variables."""
    port = free_port()
    log = home / f"serve-{port}.out"
    target = ["--upstream", upstream] if upstream is not None else []
    with open(log, "wb") as out:
        proc = subprocess.Popen([*sollama_argv(), "serve", "--listen", f"127.0.0.1:{port}", *target, *args],
                                env=env_for(home, **settings), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    gw = GatewayProc(f"http://127.0.0.1:{port}", port, proc, home, log)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                return True
            try:
                return httpx.get(gw.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_for(up, 60, 0.05), f"gateway not up:\n{gw.output()}"
        assert proc.poll() is None, f"gateway exited {proc.returncode}:\n{gw.output()}"
        yield gw
    finally:
        gw.stop()


def make_key(home: Path, name: str, *options: str) -> str:
    """A key made by the real `sollama keys create`; returns its secret."""
    done = subprocess.run([*sollama_argv(), "keys", "create", name, *options], env=env_for(home),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass
class CurlResult:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> dict:
        return json.loads(self.body)


def curl(url: str, *args: str, data: object = None, timeout: float = 60) -> CurlResult:
    """One request with the real `curl` binary: status, headers (lower-case names, last value wins), body."""
    argv = ["curl", "-sS", "-D", "-", "--max-time", str(timeout), url, *args]
    if data is not None:
        argv += ["-H", "Content-Type: application/json",
                 "--data-binary", data if isinstance(data, str) else json.dumps(data)]
    done = subprocess.run(argv, capture_output=True, timeout=timeout + 10)
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.decode("utf-8", "replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return CurlResult(status, headers, body)


def wait_queue_depth(gw: GatewayProc, depth: int, key: str | None = None, timeout: float = 30) -> bool:
    headers = {"X-API-Key": key} if key else {}

    def reached() -> bool:
        try:
            return httpx.get(gw.url + "/queue", headers=headers, timeout=2).json().get("depth", 0) >= depth
        except (httpx.HTTPError, ValueError):
            return False

    return wait_for(reached, timeout, 0.02)


def sleep_briefly() -> None:
    time.sleep(0.05)


@contextlib.contextmanager
def serving_in_thread(server, sock) -> Iterator[None]:
    """An `HttpServer` serving the listening `sock` on a uvloop loop in a thread (no signal handlers), from when its
    loop is up until the block ends; then stopped as at SIGTERM (drained) and the socket closed."""
    import asyncio
    import threading

    import uvloop

    done = threading.Event()

    def run() -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(server.serve([sock], signals=False))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    for _ in range(500):  # bounded: 5 s
        if server._stop is not None:
            break
        time.sleep(0.01)
    try:
        yield
    finally:
        server.request_stop()
        done.wait(10)
        sock.close()
