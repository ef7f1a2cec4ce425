"""`sollama bench` against the protocol stub: timing fidelity, every fault counted with its kind, Ctrl-C."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ollama_ops.edges.store import Store
from tests.lifecycle_helpers import interrupt, running, wait_for

ROOT = Path(__file__).resolve().parents[1]


def _bench(sollama, stub, *args: str):
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "--json", *args)
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def test_timing_fidelity(sollama, stub) -> None:
    """Every request's TTFT and E2EL as sollama measured them are at least what the stub itself did (request
    arrival → first / last token write): a client clock that read a chunk too early, or a send time taken too
    late, breaks the order. How close the two come is a figure, not a test: `benchmarks/timing_fidelity.py`."""
    stub.configure(tokens=6, first_token_delay=0.08, token_delay=0.01)
    result, data = _bench(sollama, stub, "-n", "12", "--warmup", "1", "-c", "2")
    assert result.exit_code == 0, result.output
    s = data["summary"]
    assert s["requests_ok"] == 12 and s["requests_failed"] == 0
    assert s["ttft"]["n"] == 12 and s["ttft"]["min"] >= 0.080  # the first token is written 80 ms after arrival
    assert s["e2el"]["min"] >= 0.080 + 5 * 0.010  # the sixth 50 ms after it
    assert s["tpot"]["n"] == 12 and s["itl"]["n"] == 12 * 5
    assert s["output_tokens"] == 72 and s["output_tokens_source"] == "server"
    assert data["arrival_clock"] == ("kernel" if sys.platform.startswith("linux") else "event loop")
    assert s["breakdown"] is not None and abs(s["breakdown"]["queue_s"]) < s["e2el"]["p50"]
    stub_did = stub.stats()["requests"]
    assert len(stub_did) == 13 and all(r["tokens"] == 6 for r in stub_did)
    with Store() as store:
        run = store.run(data["run_id"])
        assert run.status == "completed" and run.request_count == 12
        rows = store.requests(run.id, include_warmup=True)
        assert len(rows) == 13
        assert run.load["concurrency"] == 2 and run.ollama_version == "0.0.0-stub" and run.model_digest
        assert run.summary is not None and run.summary["arrival_clock"] == data["arrival_clock"]
    # requests and the stub's records pair up one to one, so each sorted rank keeps the order
    for mine, theirs in ((sorted(r.ttft for r in rows), sorted(r["first"] - r["rx"] for r in stub_did)),
                         (sorted(r.e2el for r in rows), sorted(r["last"] - r["rx"] for r in stub_did))):
        assert all(m >= t for m, t in zip(mine, theirs, strict=True)), (mine, theirs)


@pytest.mark.parametrize(("script", "kind"), [
    ({"status": 503}, "http_503"),
    ({"status": 500}, "http_500"),
    ({"status": 404, "error": 'model "stub-model" not found, try pulling it first'}, "model_not_found"),
    ({"error_after": 2}, "server_error"),
    ({"disconnect_after": 2}, "disconnect"),
    ({"malformed_after": 1}, "malformed"),
    ({"stall_after": 1}, "timeout"),
])
def test_every_fault_is_counted_with_its_kind(sollama, stub, script: dict, kind: str) -> None:
    stub.configure(tokens=4, **script)
    result, data = _bench(sollama, stub, "-n", "3", "--warmup", "0", "--timeout", "0.5")
    assert result.exit_code == 1, result.output  # a run in which every request failed fails closed
    assert f"every request failed: 3 of 3 ({kind} ×3)" in result.stderr
    assert data["failure"] == f"every request failed: 3 of 3 ({kind} ×3)"
    s = data["summary"]
    assert s["requests_failed"] == 3 and s["requests_ok"] == 0
    assert s["errors"] == {kind: 3}
    with Store() as store:
        rows = store.requests(data["run_id"])
        assert [r.error_kind for r in rows] == [kind] * 3 and all(r.error for r in rows)


def test_faults_mixed_with_successes(sollama, stub) -> None:
    stub.configure(tokens=3)
    result, data = _bench(sollama, stub, "-n", "4", "--warmup", "0")
    assert data["summary"]["requests_ok"] == 4
    stub.configure(status=503)
    result, data = _bench(sollama, stub, "-n", "2", "--warmup", "0")
    assert data["summary"]["errors"] == {"http_503": 2}
    assert result.exit_code == 1


def test_chunk_count_fallback_warns_once(sollama, stub) -> None:
    stub.configure(tokens=5, omit_eval_count=True)
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "-n", "4")
    assert result.exit_code == 0, result.output
    assert result.output.count("no eval_count") == 1
    assert "20 output (chunks)" in result.stdout
    if sys.platform.startswith("linux"):
        assert "chunk arrivals: kernel receive timestamps" in result.stdout


def test_open_loop_constant_rate(sollama, stub) -> None:
    stub.configure(tokens=2)
    result, data = _bench(sollama, stub, "--rate", "40", "--arrival", "constant", "-n", "20", "--warmup", "0")
    assert result.exit_code == 0, result.output
    s = data["summary"]
    assert s["requests_ok"] == 20
    assert s["duration_s"] >= 19 / 40 - 0.001  # the last send is due 19/40 s after the first
    assert data["load"]["rate"] == 40 and data["load"]["concurrency"] is None
    with Store() as store:
        assert sorted(r.idx for r in store.requests(data["run_id"])) == list(range(20))


def test_duration_mode_and_chat_api(sollama, stub, tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"messages": [{"role": "user", "content": "hello"}]}\n')
    stub.configure(tokens=3, token_delay=0.01)
    result, data = _bench(sollama, stub, "--duration", "0.5s", "--api", "chat", "--prompts", str(prompts),
                          "--warmup", "0")
    assert result.exit_code == 0, result.output
    with Store() as store:
        rows = store.requests(data["run_id"])
    # each request takes at least its 20 ms of token delays, so at most 0.5 / 0.02 + 1 fit; none is sent late
    assert 1 <= data["summary"]["requests_ok"] == len(rows) <= 26
    assert all(r.send_time - rows[0].send_time < 0.5 for r in rows)
    assert stub.requests[-1][1] == "/api/chat"
    assert stub.requests[-1][2]["messages"] == [{"role": "user", "content": "hello"}]


def test_options_and_max_tokens_reach_the_server(sollama, stub) -> None:
    result, data = _bench(sollama, stub, "-n", "1", "--max-tokens", "3", "-o", "temperature=0", "--warmup", "0")
    assert result.exit_code == 0, result.output
    assert stub.requests[-1][2]["options"] == {"temperature": 0, "num_predict": 3}
    assert data["summary"]["output_tokens"] == 3


def test_sweep_stops_at_saturation_or_slo(sollama, stub) -> None:
    stub.configure(tokens=3, first_token_delay=0.05, token_delay=0.005)
    result, data = _bench(sollama, stub, "--sweep", "--sweep-max", "8", "-n", "8", "--warmup", "0",
                          "--slo", "ttft=10s")
    assert result.exit_code == 0, result.output
    sweep = data["sweep"]
    loads = [s["concurrency"] for s in sweep["steps"]]
    assert loads == [1, 2, 4, 8][:len(loads)] and loads
    assert sweep["knee"] is not None and sweep["knee"]["meets_slo"] and sweep["knee"] in sweep["steps"]
    assert sweep["stop_reason"] == "reached the highest load" or sweep["stop_reason"].startswith("saturated")
    with Store() as store:
        assert len(store.runs(sweep_id=sweep["sweep_id"])) == len(loads)


def test_unknown_model_lists_installed(sollama, stub) -> None:
    result = sollama("--host", stub.host, "bench", "-m", "nope", "-n", "1")
    assert result.exit_code == 1, result.output
    assert "model 'nope' not found; installed: stub-model:latest" in result.stderr


def test_unreachable_server_exits_4(sollama) -> None:
    from tests.conftest import free_port

    result = sollama("--host", f"127.0.0.1:{free_port()}", "bench", "-m", "m", "-n", "1")
    assert result.exit_code == 4, result.output
    assert "cannot connect" in result.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["--rate", "2", "-c", "2"], "exclude each other"),
    (["-n", "3", "--duration", "5s"], "exclude each other"),
    (["--slo", "speed=1"], "--slo"),
    (["--duration", "soon"], "--duration"),
    (["--arrival", "burst", "--rate", "1"], "--arrival"),
])
def test_usage_errors(sollama, stub, args: list[str], needle: str) -> None:
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr


def test_ctrl_c_keeps_the_samples(stub, isolated: Path) -> None:
    stub.configure(tokens=4, token_delay=0.05)
    env = {**os.environ, "SOLLAMA_HOME": str(isolated), "NO_COLOR": "1"}
    sollama_bin = Path(sys.executable).parent / "sollama"
    db = isolated / "data" / "history.sqlite3"

    def stored_rows() -> int:
        if not db.exists():
            return 0
        with Store(db) as store:
            runs = store.runs()
            return len(store.requests(runs[-1].id)) if runs else 0

    with running([str(sollama_bin), "--host", stub.host, "bench", "-m", "stub-model", "-c", "2", "-n", "10000",
                  "--warmup", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                 cwd=ROOT) as proc:
        assert wait_for(lambda: stored_rows() > 0, 20, 0.2), "the bench wrote no request within 20 s"
        out, err = interrupt(proc, 20)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    with Store(db) as store:
        run = store.runs()[-1]
        assert run.status == "interrupted"
        assert len(store.requests(run.id)) > 0
        assert run.summary is not None and run.summary["requests_ok"] == len(store.requests(run.id))
    assert "requests" in out  # the partial summary was still printed


def test_dead_server_ends_the_run_as_failed(sollama, stub) -> None:
    import threading

    stub.configure(tokens=4, token_delay=0.05)
    done = threading.Event()

    def kill_after_the_third_request() -> None:
        # At concurrency 2 a third request is sent only once one has finished: the run has a success by then.
        # Counted, not timed: a loaded machine may take seconds to start the bench.
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            if sum(1 for _, path, _ in stub.requests if path == "/api/generate") >= 3:
                stub.stop()
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_the_third_request, daemon=True)
    killer.start()
    try:
        result, data = _bench(sollama, stub, "-c", "2", "-n", "1000", "--warmup", "0")
    finally:
        done.set()
        killer.join(10)
    assert result.exit_code == 1, result.output  # as `generate` when the daemon dies mid-stream
    assert "stopped answering" in result.stderr and "marked failed" in result.stderr
    assert data["status"] == "failed" and data["stop_reason"] == "server unreachable"
    s = data["summary"]
    assert s["requests_ok"] > 0 and s["errors"].get("connect", 0) >= 1
    with Store() as store:
        run = store.run(data["run_id"])
        assert run.status == "failed" and run.request_count == s["requests_ok"] + s["requests_failed"]


@pytest.mark.parametrize(("kernel", "read_time", "expected"), [
    (40, 0, "kernel"), (0, 0, "kernel"), (0, 7, "event loop"), (3, 1, "mixed (75% kernel)")])
def test_arrival_clock_names_how_chunks_were_clocked(kernel: int, read_time: int, expected: str) -> None:
    from ollama_ops.services.bench.run import arrival_clock

    assert arrival_clock(kernel, read_time) == expected
