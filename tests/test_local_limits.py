"""Running out of file descriptors is a local error (exit 1, "too many open files"), never "server unreachable"
(exit 4): the bench raises the soft limit as far as its concurrency needs, says at once when the hard limit is too
low, and a run that still hits EMFILE stops with a local error. Real processes with real limits (setrlimit in the
child), against the stub (which runs in the test process, so its descriptors are not the child's)."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_NOFILE and /proc/self/fd are Linux's")


def _sollama(args: list[str], *, soft: int, hard: int, home: str) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    env = {"SOLLAMA_HOME": home, "NO_COLOR": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "ollama_ops", *args], preexec_fn=limit, env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _generates(stub) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for _, path, _ in stub.requests if path == "/api/generate")


def test_a_low_hard_limit_is_reported_before_any_request(stub, isolated):
    done = _sollama(["--host", stub.host, "bench", "-m", "stub-model", "-c", "200", "-n", "1", "--warmup", "0"],
                    soft=100, hard=100, home=str(isolated))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: --concurrency 200 needs about "), done.stderr
    assert "this process may open at most 100 (`ulimit -Hn`)" in done.stderr
    assert done.stderr.count("\n") == 1
    assert _generates(stub) == 0


def test_the_soft_limit_is_raised_to_what_the_concurrency_needs(stub, isolated):
    stub.configure(tokens=2, first_token_delay=0.2)
    done = _sollama(["--host", stub.host, "bench", "-m", "stub-model", "-c", "120", "-n", "120", "--warmup", "0",
                     "--json"], soft=64, hard=4096, home=str(isolated))
    assert done.returncode == 0, done.stderr
    assert '"requests_ok": 120' in done.stdout
    assert _generates(stub) == 120


def test_emfile_in_the_middle_of_a_run_is_a_local_error_not_unreachable(stub, isolated):
    # an open loop without --max-concurrency has no bound to plan for: requests pile up until EMFILE
    stub.configure(tokens=2, first_token_delay=1.0)
    done = _sollama(["--host", stub.host, "bench", "-m", "stub-model", "--rate", "2000", "-n", "300", "--warmup",
                     "0"], soft=60, hard=60, home=str(isolated))
    assert done.returncode == 1, done.stderr
    assert "too many open files" in done.stderr and "unreachable" not in done.stderr, done.stderr
    assert "lower --concurrency" in done.stderr


def test_the_http_client_reports_emfile_as_a_local_limit(stub):
    code = textwrap.dedent(f"""
        import os, resource
        from ollama_ops.client.sync import OllamaClient
        from ollama_ops.errors import LocalLimit
        client = OllamaClient("{stub.url}", retries=0)
        top = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        held = []
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))  # fill every free number up to the limit
        except OSError:
            pass
        try:
            client.version()
        except LocalLimit as exc:
            print("LOCAL", exc.exit_code, exc.one_line())
        except Exception as exc:
            print("OTHER", type(exc).__name__, exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("LOCAL 1 too many open files (this process may open "), done.stdout + done.stderr
