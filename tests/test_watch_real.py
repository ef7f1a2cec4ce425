"""`sollama watch` against the real daemon: a hung one (SIGSTOP) is restarted, a killed one (SIGKILL) too; a
binary that exits at once ends in backoff and give-up (exit 7); a stale pid file pointing at an unrelated
process leaves that process alone. Every process is stopped by the PID this test started or the watchdog
recorded (verified), never by name."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ollama_ops.client.resilience import CircuitBreaker
from ollama_ops.client.sync import Client
from ollama_ops.edges import process as pf
from ollama_ops.edges.events import EventLog, events_db
from tests.conftest import ROOT, TOOLS, free_port


def _config(tmp_path: Path, hook_out: Path, **watch: object) -> Path:
    cfg = tmp_path / "watch.yaml"
    body = {"interval": 0.3, "probe_timeout": 90.0, "failures": 1, "backoff": 0.2, "backoff_max": 0.4,
            "max_restarts": 4, "probe_model": "smollm2:135m", **watch}
    hook = [sys.executable, "-c", f"import sys; open({str(hook_out)!r}, 'a').write(sys.stdin.read() + '\\n')"]
    lines = ["server:", "  extra_env: {OLLAMA_NOPRUNE: '1'}", "  start_timeout: 60", "watch:"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in body.items()]
    lines.append(f"  on_event: {json.dumps(hook)}")
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def _env(isolated: Path, port: int, binary: str, cfg: Path) -> dict[str, str]:
    return {**os.environ, "SOLLAMA_HOME": str(isolated), "SOLLAMA_SERVER_HOST": f"127.0.0.1:{port}",
            "SOLLAMA_OLLAMA_BIN": binary, "SOLLAMA_SERVER_MODELS_DIR": str(TOOLS / "test-ollama-models"),
            "SOLLAMA_CONFIG": str(cfg)}


def _sollama(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ollama_ops", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _events(kinds: tuple[str, ...] | None = None) -> list:  # type: ignore[type-arg]
    if not events_db(create=False).exists():
        return []
    with EventLog() as log:
        return list(reversed(log.last(kinds=kinds, limit=200)))


def _wait_event(kind: str, after: int, proc: subprocess.Popen[str], timeout: float = 240):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in _events()[after:] if e.kind == kind]
        if found:
            return found[0]
        assert proc.poll() is None, f"watch exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
        time.sleep(0.2)
    raise AssertionError(f"no {kind!r} event within {timeout}s; events: {[(e.kind, e.reason) for e in _events()]}")


def _healthy(port: int) -> str:
    with Client(f"127.0.0.1:{port}", read_timeout=120, breaker=CircuitBreaker()) as c:
        return c.generate("smollm2:135m", "Say OK", options={"num_predict": 1}).done_reason


class Cleanup:
    """Everything this test started, stopped by PID at the end (a stopped process is continued first)."""

    def __init__(self) -> None:
        self.procs: list[psutil.Process] = []
        self.popens: list[subprocess.Popen[str]] = []
        self.stop_env: dict[str, str] | None = None  # then `sollama stop` ends the daemon the watch started last

    def track(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            self.procs += [proc, *proc.children(recursive=True)]

    def close(self) -> None:
        for p in self.popens:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        record = pf.read_pidfile()
        if record is not None:
            self.track(record.pid)
        if self.stop_env is not None:
            _sollama("stop", env=self.stop_env)
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                if proc.is_running():  # is_running compares the create time: the same process, not a reused pid
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()


@pytest.fixture
def cleanup():  # type: ignore[no-untyped-def]
    c = Cleanup()
    yield c
    c.close()


def _watch(env: dict[str, str], cleanup: Cleanup) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "ollama_ops", "watch"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    cleanup.popens.append(proc)
    return proc


def test_watch_restarts_a_hung_then_a_killed_daemon(ollama, isolated, tmp_path, cleanup, sollama):
    port = free_port()
    hook_out = tmp_path / "hook.jsonl"
    env = _env(isolated, port, ollama.binary, _config(tmp_path, hook_out))
    cleanup.stop_env = env
    started = _sollama("start", "--json", env=env)
    assert started.returncode == 0, started.stderr
    first_pid = json.loads(started.stdout)["pid"]
    cleanup.track(first_pid)
    assert _healthy(port) in ("length", "stop")  # the model is loaded before the watch begins
    cleanup.track(first_pid)  # and its runner
    watch = _watch(env, cleanup)
    _wait_event("started", 0, watch)

    n = len(_events())
    os.kill(first_pid, signal.SIGSTOP)  # hung: the port accepts, nothing answers
    restarted = _wait_event("restarted", n, watch)
    assert restarted.pid != first_pid
    assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
    kinds = [e.kind for e in _events()[n:]]
    assert kinds.index("unload") < kinds.index("restart") < kinds.index("restarted")  # unload first, then restart
    assert pf.read_pidfile().pid == restarted.pid
    cleanup.track(restarted.pid)
    assert _healthy(port) in ("length", "stop")

    n = len(_events())
    cleanup.track(restarted.pid)
    os.kill(restarted.pid, signal.SIGKILL)
    again = _wait_event("restarted", n, watch)
    cleanup.track(again.pid)
    assert again.pid not in (first_pid, restarted.pid) and pf.read_pidfile().pid == again.pid
    assert [e.kind for e in _events()[n:]][-2:] == ["restart", "restarted"]
    assert _healthy(port) in ("length", "stop")

    status = sollama("status", env={k: v for k, v in env.items() if k.startswith("SOLLAMA_")})
    assert status.exit_code == 0, status.output
    assert "watchdog" in status.stdout and f"restarted (pid {again.pid})" in status.stdout
    hooked = [json.loads(line) for line in hook_out.read_text().splitlines() if line.strip()]
    assert [h["kind"] for h in hooked][:1] == ["started"] and "restarted" in [h["kind"] for h in hooked]
    assert all(h["address"] == f"http://127.0.0.1:{port}" for h in hooked)

    watch.send_signal(signal.SIGINT)
    assert watch.wait(30) == 130
    stopped = _sollama("stop", env=env)
    assert stopped.returncode == 0, stopped.stderr


def test_a_binary_that_exits_at_once_ends_in_give_up(isolated, tmp_path, cleanup):
    fake = tmp_path / "ollama"
    fake.write_text("#!/bin/sh\necho 'fake ollama: exiting' >&2\nexit 3\n")
    fake.chmod(0o755)
    port = free_port()
    env = _env(isolated, port, str(fake), _config(tmp_path, tmp_path / "hook.jsonl", max_restarts=2,
                                                  probe_timeout=2.0, backoff=2.0, backoff_max=4.0))
    watch = _watch(env, cleanup)
    out, err = watch.communicate(timeout=120)
    assert watch.returncode == 7, err
    kinds = [e.kind for e in _events()]
    assert kinds.count("restart-failed") == 2 and kinds.count("restarted") == 0
    assert "backoff" in kinds and kinds[-1] == "give-up"
    assert kinds.index("backoff") > kinds.index("restart-failed")
    assert "watchdog gave up on" in err and "reached watch.max_restarts (2)" in err
    assert out == ""


def test_a_stale_pid_file_of_an_unrelated_process_leaves_it_alone(ollama, isolated, tmp_path, cleanup):
    bystander = subprocess.Popen(["sleep", "600"])
    cleanup.popens.append(bystander)  # type: ignore[arg-type]
    port = free_port()
    pf.write_pidfile(pf.PidRecord(pid=bystander.pid, create_time=psutil.Process(bystander.pid).create_time(),
                                  cmdline=[ollama.binary, "serve"], host=f"127.0.0.1:{port}",
                                  base_url=f"http://127.0.0.1:{port}", binary=ollama.binary))
    env = _env(isolated, port, ollama.binary, _config(tmp_path, tmp_path / "hook.jsonl"))
    cleanup.stop_env = env
    watch = _watch(env, cleanup)
    restarted = _wait_event("restarted", 0, watch)
    cleanup.track(restarted.pid)
    assert bystander.poll() is None  # never signalled
    assert restarted.pid != bystander.pid and pf.read_pidfile().pid == restarted.pid
    assert _healthy(port) in ("length", "stop")
    watch.send_signal(signal.SIGINT)
    assert watch.wait(30) == 130
    stopped = _sollama("stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert bystander.poll() is None


def test_start_supervise_starts_then_heals(ollama, isolated, tmp_path, cleanup, sollama):
    port = free_port()
    env = _env(isolated, port, ollama.binary, _config(tmp_path, tmp_path / "hook.jsonl"))
    cleanup.stop_env = env
    assert sollama("start", "--supervise", "--foreground").exit_code == 2
    proc = subprocess.Popen([sys.executable, "-m", "ollama_ops", "start", "--supervise"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    cleanup.popens.append(proc)
    _wait_event("started", 0, proc)
    first = pf.read_pidfile()
    assert first is not None
    cleanup.track(first.pid)
    n = len(_events())
    os.kill(first.pid, signal.SIGKILL)
    restarted = _wait_event("restarted", n, proc)
    cleanup.track(restarted.pid)
    assert restarted.pid != first.pid and pf.read_pidfile().pid == restarted.pid
    assert _healthy(port) in ("length", "stop")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert "started at" in proc.stdout.read()  # the start's own summary came first
