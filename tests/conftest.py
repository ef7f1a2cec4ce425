"""Test rig: isolation for every test, a CliRunner fixture, the protocol stub, and the real Ollama daemon."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ollama_ops.cli.app import app
from tests.services_fixtures import postgres_server, postgres_url, redis_server, redis_url  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
TOOLS = Path(os.environ.get("SOLLAMA_TOOLS") or Path.home() / ".cache" / "sollama" / "tools")
TEST_MODEL = "smollm2:135m"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own SOLLAMA_HOME, no colour, fixed width, and no inherited sollama/Ollama env."""
    for var in list(os.environ):
        if (var.startswith("SOLLAMA_") and var not in ("SOLLAMA_TOOLS", "SOLLAMA_OLLAMA_BIN")) or var == "OLLAMA_HOST":
            monkeypatch.delenv(var)
    home = tmp_path / "sollama-home"
    home.mkdir()
    monkeypatch.setenv("SOLLAMA_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TERM", "dumb")
    return home


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Sollama:
    """Invoke the real CLI in-process (CliRunner, catch_exceptions=False) with stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        result = self.runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def sollama() -> Sollama:
    return Sollama()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the protocol stub -----------------------------------------------------------------------------------------

@pytest.fixture
def stub() -> Iterator[object]:
    """A scriptable Ollama protocol stub on a free loopback port (faults and timing only)."""
    from tests.stub_ollama import StubOllama

    with StubOllama() as server:
        yield server


# -- the real Ollama daemon ------------------------------------------------------------------------------------

def ollama_binary() -> str | None:
    env = os.environ.get("SOLLAMA_OLLAMA_BIN")
    if env and Path(env).is_file():
        return env
    built = TOOLS / "bin" / "ollama"
    if built.is_file():
        return str(built)
    return shutil.which("ollama")


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"real Ollama required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def test_model_file() -> Path | None:
    path = TOOLS / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if path.is_file():
        return path
    script = ROOT / "scripts" / "fetch-test-model.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


@dataclass
class OllamaServer:
    url: str
    host: str
    pid: int
    log: Path
    models_dir: Path
    home: Path
    binary: str
    model: str = TEST_MODEL

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_ollama(binary: str, models_dir: Path, home: Path, log: Path, port: int | None = None,
                 extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start `ollama serve` on loopback with its own HOME and models dir; wait for GET / = 200."""
    port = port or free_port()
    host = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update({"HOME": str(home), "OLLAMA_HOST": host, "OLLAMA_MODELS": str(models_dir),
                "OLLAMA_KEEP_ALIVE": "10m",
                "OLLAMA_NO_CLOUD": "1", **(extra_env or {})})
    home.mkdir(parents=True, exist_ok=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen([binary, "serve"], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"ollama serve exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"http://{host}/", timeout=1).status_code == 200:
                return proc, host
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError(f"ollama serve not ready within 60s:\n{log.read_text(errors='replace')[-3000:]}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGINT the PID we started, wait, then SIGKILL that PID only."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def ensure_test_model(url: str, name: str = TEST_MODEL) -> None:
    """Import SmolLM2 once per models cache (the cache is reused between runs)."""
    from ollama_ops.client.sync import OllamaClient
    from ollama_ops.services.models import import_gguf, name_taken

    with OllamaClient(url, read_timeout=300) as client:
        if name_taken(client, name):
            return
        gguf = test_model_file()
        if gguf is None:
            _missing("could not fetch the SmolLM2 GGUF (scripts/fetch-test-model.sh failed)")
        import_gguf(client, gguf, name)


@pytest.fixture(scope="session")
def ollama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OllamaServer]:
    """The real `ollama serve` for the whole session, on a free loopback port, serving SmolLM2."""
    binary = ollama_binary()
    if binary is None:
        _missing("no ollama binary: run scripts/install-ollama.sh or set SOLLAMA_OLLAMA_BIN")
    models_dir = TOOLS / "test-ollama-models"
    home = tmp_path_factory.mktemp("ollama-home")
    log = home / "serve.log"
    proc, host = start_ollama(binary, models_dir, home, log)
    server = OllamaServer(url=f"http://{host}", host=host, pid=proc.pid, log=log, models_dir=models_dir,
                          home=home, binary=binary)
    try:
        ensure_test_model(server.url)
        yield server
    finally:
        stop_process(proc)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def ollama(ollama_server: OllamaServer, request: pytest.FixtureRequest) -> Iterator[OllamaServer]:
    """The real daemon for one test; on failure, the tail of the server log is printed."""
    yield ollama_server
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        sys.stderr.write(f"\n--- ollama serve log (tail) {ollama_server.log} ---\n{ollama_server.log_tail()}\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the real daemon carries the `ollama` marker, so `-m ollama` / `-m "not ollama"` split
    the suite exactly."""
    for item in items:
        if {"ollama", "ollama_server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ollama)
        if {"redis_server", "postgres_server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)
