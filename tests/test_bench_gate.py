"""The CI gate fails closed: `bench` exits 1 when requests failed beyond `--max-failures`, `report --compare
--fail-on-regression` exits 1 when it cannot decide, and a daemon dying mid-stream ends generate and bench alike.

Through the public CLI against the protocol stub (faults on demand) and runs written with the store's public API.
"""

from __future__ import annotations

import json
import threading

import pytest

from ollama_ops.core.bench.gate import FailureBudget, parse_max_failures, run_failure
from ollama_ops.edges.store import Store
from tests.test_report import add_run


def _bench(sollama, stub, *args: str):
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "--json", "--warmup", "0", *args)
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


# -- the failure budget (pure) -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "budget"), [
    ("0", FailureBudget(count=0)), ("3", FailureBudget(count=3)), (" 12 ", FailureBudget(count=12)),
    ("5%", FailureBudget(percent=5.0)), ("2.5%", FailureBudget(percent=2.5)), ("0%", FailureBudget(percent=0.0)),
    ("100%", FailureBudget(percent=100.0)),
])
def test_max_failures_parses_a_count_or_a_percentage(text: str, budget: FailureBudget) -> None:
    assert parse_max_failures(text) == budget


@pytest.mark.parametrize("text", ["-1", "1.5", "abc", "", "%", "101%", "-1%", "nan%", "inf%", "1e999%", "3x",
                                  "٣", "5%%"])
def test_max_failures_rejects_what_is_not_a_count_or_percentage(text: str) -> None:
    with pytest.raises(ValueError, match="takes a"):
        parse_max_failures(text)


@pytest.mark.parametrize(("ok", "failed", "budget", "expected"), [
    (10, 0, FailureBudget(), None),
    (9, 1, FailureBudget(), "1 of 10 requests failed (http_503 ×1); --max-failures allows none"),
    (9, 1, FailureBudget(count=1), None),
    (8, 2, FailureBudget(count=1), "2 of 10 requests failed (http_503 ×2); --max-failures allows 1"),
    (9, 1, FailureBudget(percent=10.0), None),
    (9, 1, FailureBudget(percent=9.9), "1 of 10 requests failed (http_503 ×1); --max-failures allows 9.9%"),
    (0, 4, FailureBudget(percent=100.0), "every request failed: 4 of 4 (http_503 ×4)"),
    (0, 0, FailureBudget(count=5), "no request was measured"),
])
def test_run_failure_names_the_count_and_the_budget(ok: int, failed: int, budget: FailureBudget,
                                                    expected: str | None) -> None:
    errors = {"http_503": failed} if failed else {}
    assert run_failure(ok, failed, errors, budget) == expected


# -- bench through the CLI ---------------------------------------------------------------------------------------

def test_one_failed_request_fails_the_run_by_default(sollama, stub) -> None:
    stub.configure(tokens=2, status=503, status_every=5)  # requests 5 and 10 answer 503
    result, data = _bench(sollama, stub, "-n", "10")
    assert result.exit_code == 1, result.output
    assert data["summary"]["requests_ok"] == 8 and data["summary"]["errors"] == {"http_503": 2}
    assert data["status"] == "completed" and data["max_failures"] == "0"
    assert data["failure"] == "2 of 10 requests failed (http_503 ×2); --max-failures allows none"
    assert result.stderr.strip().splitlines() == [
        f"error: bench run #{data['run_id']} failed: 2 of 10 requests failed (http_503 ×2); --max-failures "
        "allows none (--max-failures N or P% allows some)"]
    with Store() as store:  # the run itself is stored as measured
        assert store.run(data["run_id"]).status == "completed"


@pytest.mark.parametrize(("budget", "code"), [("2", 0), ("1", 1), ("20%", 0), ("19.9%", 1), ("100%", 0)])
def test_max_failures_sets_the_threshold(sollama, stub, budget: str, code: int) -> None:
    stub.configure(tokens=2, status=503, status_every=5)
    result, data = _bench(sollama, stub, "-n", "10", "--max-failures", budget)
    assert result.exit_code == code, result.output
    assert data["max_failures"] == budget and data["summary"]["requests_failed"] == 2
    assert (data["failure"] is None) == (code == 0)
    if code:
        assert f"--max-failures allows {budget}" in result.stderr


def test_a_run_without_a_successful_request_fails_whatever_the_budget(sollama, stub) -> None:
    stub.configure(status=500)
    result, data = _bench(sollama, stub, "-n", "3", "--max-failures", "100%")
    assert result.exit_code == 1, result.output
    assert "every request failed: 3 of 3 (http_500 ×3)" in result.stderr
    assert "allows some" not in result.stderr


@pytest.mark.parametrize("value", ["-1", "1.5", "lots", "101%", "nan%", "inf%", ""])
def test_a_bad_max_failures_is_a_usage_error(sollama, stub, value: str) -> None:
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "-n", "1", "--max-failures", value)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --max-failures takes a") and len(result.stderr.splitlines()) == 1
    assert stub.request_count == 0  # refused before any request


def test_a_sweep_fails_when_one_of_its_steps_does(sollama, stub) -> None:
    stub.configure(tokens=2, status=503, status_every=7)  # the 7th request of the sweep fails
    result, data = _bench(sollama, stub, "--sweep", "--sweep-max", "4", "-n", "4")
    assert result.exit_code == 1, result.output
    steps = data["sweep"]["steps"]
    assert len(steps) >= 2
    assert data["failure"] == (f"step 2 (run #{steps[1]['run_id']}): 1 of 4 requests failed (http_503 ×1); "
                               "--max-failures allows none")


def test_bench_help_documents_the_gate(sollama) -> None:
    result = sollama("bench", "--help")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "--max-failures" in text and "N|P%" in text
    assert "Exit codes: 0 the run passed · 1 requests failed beyond --max-failures" in text


# -- a daemon that dies mid-stream -------------------------------------------------------------------------------

def test_a_daemon_dying_mid_stream_exits_1_in_generate_and_in_bench(sollama, stub) -> None:
    codes = {}
    for command in (["generate", "-m", "stub-model", "hi"],
                    ["bench", "-m", "stub-model", "-c", "2", "-n", "1000", "--warmup", "0"]):
        stub.start()
        stub.configure(tokens=200, token_delay=0.01)
        killer = threading.Timer(0.5, stub.stop)
        killer.start()
        try:
            result = sollama("--host", stub.host, *command)
        finally:
            killer.cancel()
            killer.join()
        codes[command[0]] = result.exit_code
        assert "Traceback" not in result.output
    assert codes == {"generate": 1, "bench": 1}


# -- report --compare --fail-on-regression ---------------------------------------------------------------------

def test_a_candidate_without_a_successful_request_cannot_pass_the_gate(sollama) -> None:
    with Store() as store:
        add_run(store, seed=1, label="main")
        add_run(store, seed=2, label="pr", n=0, failed=20)
    result = sollama("report", "--compare", "label:main", "label:pr", "--fail-on-regression", "--format", "md")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        "error: cannot decide whether performance regressed: candidate label:pr has no successful request "
        "(timeout ×20) (run more requests, or compare other runs)"]
    assert "Cannot decide whether performance regressed" in result.stdout
    assert "No performance regression" not in result.stdout


def test_a_base_without_a_successful_request_names_the_base(sollama) -> None:
    with Store() as store:
        base = add_run(store, seed=1, n=0, failed=5)
        cand = add_run(store, seed=2)
    result = sollama("report", "--compare", str(base), str(cand), "--fail-on-regression", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["undecided"] == [f"base run {base} has no successful request (timeout ×5)"]
    assert f"base run {base} has no successful request" in result.stderr


def test_without_the_gate_an_undecided_comparison_still_exits_0(sollama) -> None:
    with Store() as store:
        add_run(store, seed=1)
        add_run(store, seed=2, n=0, failed=5)
    result = sollama("report", "--compare", "1", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["undecided"] == ["candidate run 2 has no successful request (timeout ×5)"]


def test_a_real_regression_is_still_6_when_another_gated_metric_cannot_decide(sollama) -> None:
    with Store() as store:
        add_run(store, seed=1, n=200)
        add_run(store, seed=2, n=200, scale=1.5)
    result = sollama("report", "--compare", "1", "2", "--fail-on-regression", "--json")
    assert result.exit_code == 6, result.output
    assert json.loads(result.stdout)["regressed"]


def test_help_documents_the_gate_exit_codes(sollama) -> None:
    text = " ".join(sollama("report", "--help").stdout.split())
    assert "exit 1 when the comparison cannot decide" in text
