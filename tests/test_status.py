"""`sollama status`: the real daemon, nothing at all, and the stub for a hung runner."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ollama_ops.core.health import error_lines, status_state
from ollama_ops.services.status import SCHEMA, StatusReport, loaded_models
from tests.conftest import free_port


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


# -- against the real daemon ------------------------------------------------------------------------------------

@pytest.mark.ollama
def test_status_json_of_the_real_daemon(sollama, ollama):
    result = sollama("--host", ollama.host, "status", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == SCHEMA and doc["state"] == "healthy"
    assert doc["reachable"] is True and doc["healthy"] is True
    assert doc["version"] == httpx.get(f"{ollama.url}/api/version", timeout=5).json()["version"]  # 0.23.2 in CI
    assert doc["installed"]["count"] >= 1 and doc["installed"]["total_size"] > 0
    assert doc["latency_s"] > 0
    proc = doc["process"]
    assert proc["pid"] == ollama.pid and proc["source"] == "listener"
    assert proc["started_by"] == "not started by sollama" and proc["rss"] > 0
    assert doc["disk"]["path"] == str(ollama.models_dir) and doc["disk"]["free"] > 0
    assert doc["memory"]["budget"] > 0


@pytest.mark.ollama
def test_status_reads_who_started_it_from_a_verified_pid_file(sollama, ollama):
    import psutil

    from ollama_ops.edges.process import PidRecord, write_pidfile

    proc = psutil.Process(ollama.pid)
    write_pidfile(PidRecord(pid=ollama.pid, create_time=proc.create_time(), cmdline=proc.cmdline(),
                            host=ollama.host, started_at="2025-01-01T00:00:00+00:00",
                            started_by="sollama 0.1 (tester@host)"))
    doc = json.loads(sollama("--host", ollama.host, "status", "--json").stdout)
    assert doc["process"]["source"] == "pidfile"
    assert doc["process"]["started_by"] == "sollama 0.1 (tester@host)"


@pytest.mark.ollama
def test_status_human_view_of_the_real_daemon(sollama, ollama):
    result = sollama("--host", ollama.host, "status")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("healthy") and "Ollama 0.23.2" in result.stdout
    assert f"pid {ollama.pid}" in result.stdout and result.stderr == ""


# -- against nothing --------------------------------------------------------------------------------------------

def test_status_of_nothing_exits_4_with_one_line(sollama):
    result = sollama("--host", f"127.0.0.1:{free_port()}", "status")
    assert result.exit_code == 4, result.output
    assert result.stdout == ""
    assert one_line(result.stderr) and "cannot connect to Ollama" in result.stderr


def test_status_json_of_nothing_still_prints_the_document(sollama):
    result = sollama("--host", f"127.0.0.1:{free_port()}", "status", "--json")
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    assert (doc["state"], doc["healthy"], doc["reachable"]) == ("unreachable", False, False)
    assert doc["version"] is None and "connection refused" in doc["error"]
    assert one_line(result.stderr) and "cannot connect to Ollama" in result.stderr


def test_wait_against_nothing_gives_up_in_bounded_time(sollama):
    start = time.monotonic()
    result = sollama("--host", f"127.0.0.1:{free_port()}", "status", "--wait", "1")
    elapsed = time.monotonic() - start
    assert result.exit_code == 4, result.output
    assert elapsed >= 0.9, elapsed  # it kept trying for the whole window before giving up


def test_wait_returns_once_the_server_comes_up(sollama):
    from tests.stub_ollama import StubOllama

    port = free_port()
    stub = StubOllama(port=port)
    timer = threading.Timer(1.0, stub.start)
    timer.start()
    try:
        start = time.monotonic()
        result = sollama("--host", f"127.0.0.1:{port}", "status", "--wait", "15", "--json")
        elapsed = time.monotonic() - start
    finally:
        timer.join()
        stub.stop()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reachable"] is True
    assert elapsed >= 0.9, elapsed  # it waited for the server rather than failing at once


# -- the deep probe, with the stub ------------------------------------------------------------------------------

def test_deep_probe_passes_and_sends_one_token(sollama, stub):
    result = sollama("--host", stub.host, "status", "--deep", "--json")
    assert result.exit_code == 0, result.output
    deep = json.loads(result.stdout)["deep"]
    assert deep["ok"] is True and deep["model"] == "stub-model:latest"
    generate = [body for method, path, body in stub.requests if path == "/api/generate"]
    assert generate and generate[-1]["options"] == {"num_predict": 1}


def test_deep_probe_of_a_hung_runner_exits_7(sollama, stub):
    stub.configure(stall_after=0)
    start = time.monotonic()
    result = sollama("--host", stub.host, "status", "--deep", "--deep-timeout", "1", "--json")
    elapsed = time.monotonic() - start
    assert result.exit_code == 7, result.output
    doc = json.loads(result.stdout)
    assert doc["reachable"] is True and doc["healthy"] is False and doc["state"] == "degraded"
    assert doc["deep"]["ok"] is False and "stub-model" in doc["deep"]["error"]
    assert one_line(result.stderr) and "degraded" in result.stderr
    assert elapsed >= 0.9, elapsed  # the probe waited out its --deep-timeout


def test_deep_probe_with_a_named_model(sollama, stub):
    result = sollama("--host", stub.host, "status", "--deep", "--model", "missing", "--json")
    assert result.exit_code == 7, result.output
    assert "not found" in json.loads(result.stdout)["deep"]["error"]


# -- watch ------------------------------------------------------------------------------------------------------

def test_watch_plain_output_repeats_count_times(sollama, stub):
    result = sollama("--host", stub.host, "status", "--watch", "--count", "2", "--interval", "0.2")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("--- ") == 2 and result.stdout.count("healthy") == 2


def test_watch_json_prints_one_document_per_line(sollama, stub):
    result = sollama("--host", stub.host, "status", "--watch", "--count", "2", "--interval", "0.2", "--json")
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["state"] for d in docs] == ["healthy", "healthy"]


def test_watch_of_nothing_ends_with_exit_4(sollama):
    result = sollama("--host", f"127.0.0.1:{free_port()}", "status", "--watch", "--count", "1", "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["reachable"] is False


# -- log errors and parsing -------------------------------------------------------------------------------------

def test_status_shows_the_last_error_lines_of_the_daemon_log(sollama, stub, isolated):
    logs = isolated / "state" / "logs"
    logs.mkdir(parents=True)
    lines = [f'time=2025-01-01T00:00:0{i}Z level=INFO msg="fine {i}"' for i in range(5)]
    lines += ['time=2025-01-01T00:00:06Z level=ERROR msg="llama runner terminated" error="signal: killed"',
              'time=2025-01-01T00:00:07Z level=INFO msg="after"']
    (logs / "ollama.log").write_text("\n".join(lines) + "\n")
    # no pid record: sollama does not manage the daemon at this address, so the log is not its log
    doc = json.loads(sollama("--host", stub.host, "status", "--json").stdout)
    assert doc["log"] == {"files": [], "errors": []}
    # the record of the daemon sollama started here (gone now): its log is shown
    (isolated / "state" / "server.json").write_text(json.dumps({
        "pid": 0, "create_time": 1.0, "cmdline": ["ollama", "serve"], "host": stub.host,
        "base_url": f"http://{stub.host}", "log": str(logs / "ollama.log")}))
    doc = json.loads(sollama("--host", stub.host, "status", "--json").stdout)
    assert doc["log"]["errors"] == [lines[5]]
    assert doc["log"]["files"] == [str(logs / "ollama.log")]


def test_loaded_models_parse_nanosecond_times_and_forever():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    soon = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    ps = [{"name": "a", "size": 200, "size_vram": 50, "expires_at": soon, "context_length": 4096},
          {"name": "b", "size": 100, "size_vram": 0, "expires_at": "2318-08-01T00:00:00Z"}]
    a, b = loaded_models(ps, now)
    assert (a.expires_in_s, a.vram_share, a.context_length) == (300.1, 0.25, 4096)
    assert b.expires_in_s is None and b.context_length is None


@pytest.mark.parametrize(("reachable", "deep", "state"), [
    (False, None, "unreachable"), (False, False, "unreachable"), (True, None, "healthy"), (True, True, "healthy"),
    (True, False, "degraded")])
def test_status_state(reachable, deep, state):
    assert status_state(reachable, deep) == state


def test_error_lines_keeps_the_last_ones():
    lines = ["ok", "level=ERROR a", "Error: b", "fine", "panic: c", "level=ERROR d"]
    assert error_lines(lines, 3) == ["Error: b", "panic: c", "level=ERROR d"]
    assert error_lines(lines, 0) == []


def test_schema_doc_lists_every_top_level_field():
    from dataclasses import fields

    doc = (os.path.dirname(__file__) + "/../docs/status-schema.md")
    text = open(doc, encoding="utf-8").read()
    for f in fields(StatusReport):
        assert f"`{f.name}`" in text, f.name


def test_watch_stops_quietly_on_ctrl_c(stub):
    """The real entry point in a subprocess: SIGINT ends a watch with exit 0 and no traceback."""
    import subprocess
    import sys

    from tests.lifecycle_helpers import interrupt, running, wait_for

    with running([sys.executable, "-m", "ollama_ops", "--host", stub.host, "status", "--watch", "--interval", "0.2"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        wait_for(lambda: sum(1 for _, path, _ in stub.requests if path == "/api/ps") >= 2, 20)
        out, err = interrupt(proc, 10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "healthy" in out


def test_unreachable_names_a_process_that_holds_the_port_without_answering(sollama):
    import socket

    with socket.socket() as sock:  # listens, never answers: reads time out
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        result = sollama("--host", f"127.0.0.1:{port}", "status", "--json",
                         env={"SOLLAMA_CLIENT_READ_TIMEOUT": "0.5"})
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    assert doc["process"]["pid"] == os.getpid()
    assert f"pid {os.getpid()} holds the port but does not answer" in result.stderr


@pytest.mark.parametrize(("line", "is_error"), [
    ('time=x level=ERROR source=server.go msg="llama runner terminated" error="signal: killed"', True),
    ('time=x level=FATAL msg="bye"', True),
    ('time=x level=WARN source=routes.go msg="cloud model lookup failed" error="dial tcp: no route"', False),
    ('time=x level=INFO msg="load failed, retrying"', False),
    ('[GIN] 2026/11/26 - 14:41:00 | 500 |  1.29s |  127.0.0.1 | POST     "/api/generate"', True),
    ('[GIN] 2026/11/26 - 14:41:00 | 404 |  1.2ms |  127.0.0.1 | POST     "/api/error"', False),
    ('[GIN] 2026/11/26 - 14:41:00 | 200 |  1.29s |  127.0.0.1 | POST     "/api/generate"', False),
    ("Error: listen tcp 127.0.0.1:11434: bind: address already in use", True),
    ("panic: runtime error: index out of range", True),
    ("llama_model_load: failed to open file", True),
    ("llama_model_loader: loaded meta data with 33 key-value pairs", False),
])
def test_an_error_line_is_told_by_its_level_its_status_or_its_words(line, is_error):
    from ollama_ops.core.health import is_error_line

    assert is_error_line(line) is is_error


def test_wait_polls_until_the_deadline_and_once_at_it():
    """A fake clock: polls at 0, 0.25, 0.5, 0.75 and at the deadline 0.9 (not giving up at 0.75)."""
    from ollama_ops.config import load_settings
    from ollama_ops.services.status import wait_until_reachable

    now = [0.0]
    polls: list[float] = []
    settings = load_settings(flags={"server.host": f"127.0.0.1:{free_port()}"})

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        polls.append(round(now[0], 3))
        now[0] += seconds

    assert wait_until_reachable(settings, 0.9, interval=0.25, clock=clock, sleep=sleep) is False
    assert polls == [0.0, 0.25, 0.5, 0.75]
    assert now[0] == pytest.approx(0.9)
