"""`sollama report` through the public CLI, over runs written with the store's public API (synthetic samples)."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ollama_ops.edges.store import RequestRecord, RunMeta, Store, UsageRow

LOAD = {"concurrency": 1, "rate": None, "requests": 200, "warmup": 1, "max_tokens": 16, "prompts": "short"}


def add_run(store: Store, *, scale: float = 1.0, seed: int = 0, label: str | None = None, n: int = 200,
            load: dict | None = None, model: str = "smollm2:135m", failed: int = 0, warmup: int = 1,
            status: str = "completed", summary: dict | None = None) -> int:
    """A run of `n` measured requests: TTFT ≈ 100 ms·scale, 16 tokens at ≈ 10 ms·scale each (lognormal noise)."""
    rng = random.Random(seed)
    run_id = store.create_run(RunMeta(model=model, host="127.0.0.1:11434", label=label, load=load or LOAD,
                                      started_at=time.time() - 3600 + seed))
    rows, send = [], 1_000.0
    for idx in range(warmup + n + failed):
        if idx >= warmup + n:
            rows.append(RequestRecord(idx=idx, send_time=send, ok=False, error_kind="timeout", error="stalled"))
            continue
        ttft = 0.1 * scale * rng.lognormvariate(0, 0.1)
        gaps = [0.01 * scale * rng.lognormvariate(0, 0.1) for _ in range(15)]
        e2el = ttft + sum(gaps)
        rows.append(RequestRecord(idx=idx, send_time=send, ok=True, warmup=idx < warmup, ttft=ttft, e2el=e2el,
                                  itl=gaps, output_tokens=16, prompt_tokens=12, load_s=0.001,
                                  prompt_eval_s=0.01, eval_s=e2el - 0.02, total_s=e2el - 0.005, queue_s=0.005))
        send += e2el
    store.add_requests(run_id, rows)
    store.finish_run(run_id, status, summary)
    return run_id


@pytest.fixture
def history() -> dict[str, int]:
    """Run 1: base (label main); 2: 10% slower (label pr); 3: same distribution as 1 (label main)."""
    with Store() as store:
        return {"base": add_run(store, seed=1, label="main"),
                "slower": add_run(store, scale=1.10, seed=2, label="pr"),
                "same": add_run(store, seed=3, label="main")}


def test_report_lists_stored_runs(sollama, history):
    result = sollama("report")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "LABEL", "STARTED"]
    rows = [line.split() for line in lines[1:] if line.strip()]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert [r[1] for r in rows] == ["main", "pr", "main"]
    assert all("200/0" in r for r in rows)


def test_report_list_filters_and_json(sollama, history):
    result = sollama("report", "--label", "main", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [r["id"] for r in doc["runs"]] == [1, 3]
    assert doc["runs"][0]["figures"]["ok"] == 200
    assert doc["runs"][0]["figures"]["ttft_p50"] == pytest.approx(0.1, rel=0.05)
    last = json.loads(sollama("report", "--last", "1", "--format", "json").stdout)
    assert [r["id"] for r in last["runs"]] == [3]


def test_empty_history_lists_nothing(sollama):
    result = sollama("report")
    assert result.exit_code == 0, result.output
    assert "no bench runs" in result.stdout


def test_report_run_shows_figures_and_colourless_charts(sollama, history):
    result = sollama("report", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "bench run 1" in out
    assert "200 ok, 0 failed" in out
    assert "TTFT (ms)" in out and "E2EL (ms)" in out and "Latency over time" in out
    assert "\x1b[" not in out  # NO_COLOR and not a terminal: no escape codes
    assert max(len(line) for line in out.splitlines()) <= 120
    ttft_row = next(line for line in out.splitlines() if line.startswith("ttft"))
    assert ttft_row.split()[1] == "200"


def test_report_run_json_has_samples_for_charts(sollama, history):
    doc = json.loads(sollama("report", "2", "--json").stdout)
    assert doc["run"]["id"] == 2
    # the warm-up request is in the timeline, marked, and in no figure
    assert [s["phase"] for s in doc["samples"]].count("run") == 200
    assert [s["idx"] for s in doc["samples"] if s["phase"] == "warmup"] == [0]
    assert doc["excluded"] == {"warmup": 1} and doc["metrics"]["ttft"]["n"] == 200
    assert doc["metrics"]["ttft"]["p50"] == pytest.approx(0.11, rel=0.05)
    assert doc["samples"][0]["offset_s"] == 0


def test_report_run_md_with_options_after_the_run(sollama, history):
    result = sollama("report", "1", "--format", "md")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("### Bench run 1")
    assert "| METRIC | N |" in result.stdout
    assert "TTFT (ms)" not in result.stdout  # no charts in Markdown


def test_unknown_run_is_one_line_exit_1(sollama, history):
    result = sollama("report", "99")
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and "no bench run 99" in result.stderr


def test_compare_md_has_a_table_and_verdicts(sollama, history):
    result = sollama("report", "--compare", "1", "2", "--format", "md")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "| METRIC | BASE | CANDIDATE | CHANGE [95% CI] | VERDICT |" in out
    assert "| --- | ---: | ---: | ---: | --- |" in out
    ttft = next(line for line in out.splitlines() if line.startswith("| TTFT p50"))
    assert "regressed" in ttft
    assert "Performance regressed" in out.splitlines()[0]
    assert "\x1b[" not in out


def test_fail_on_regression_exits_6_after_printing(sollama, history):
    result = sollama("report", "--compare", "1", "2", "--fail-on-regression")
    assert result.exit_code == 6, result.output
    assert "TTFT p50" in result.stdout  # the report was printed first
    assert result.stderr.count("\n") == 1
    assert "regressed" in result.stderr and "ttft_p50" in result.stderr and "e2el_p50" in result.stderr


def test_identical_distributions_pass_the_gate(sollama, history):
    result = sollama("report", "--compare", "1", "3", "--fail-on-regression", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["regressed"] == []
    assert {m["verdict"] for m in doc["metrics"]} == {"no change"}


def test_a_high_threshold_passes_the_regressed_pair(sollama, history):
    result = sollama("report", "--compare", "1", "2", "--fail-on-regression", "--threshold", "50")
    assert result.exit_code == 0, result.output


def test_compare_json_is_one_document_with_intervals(sollama, history):
    result = sollama("report", "--compare", "1", "2", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one document
    assert doc["base"]["run_ids"] == [1] and doc["candidate"]["run_ids"] == [2]
    metrics = {m["key"]: m for m in doc["metrics"]}
    assert set(metrics) == {"ttft_p50", "ttft_p90", "tpot_p50", "itl_p50", "e2el_p50", "e2el_p90",
                            "output_throughput"}
    ttft = metrics["ttft_p50"]
    assert ttft["change"]["lo_pct"] < ttft["change"]["point_pct"] < ttft["change"]["hi_pct"]
    assert 5 < ttft["change"]["point_pct"] < 15
    rate = metrics["output_throughput"]
    assert rate["higher_is_better"] and rate["verdict"] == "regressed" and rate["change"]["point_pct"] < -5
    assert [m["key"] for m in doc["metrics"] if m["gated"]] == ["ttft_p50", "tpot_p50", "e2el_p50",
                                                               "output_throughput"]
    assert doc["regressed"] == ["ttft_p50", "tpot_p50", "e2el_p50", "output_throughput"]


def test_default_compare_is_latest_vs_previous_with_same_load(sollama, history):
    with Store() as store:
        add_run(store, seed=4, load={**LOAD, "concurrency": 4})  # run 4: another load shape
        add_run(store, seed=5, load={**LOAD, "requests": 50}, n=50)  # run 5: same shape, fewer requests
    doc = json.loads(sollama("report", "--compare", "--json").stdout)
    assert doc["base"]["run_ids"] == [3] and doc["candidate"]["run_ids"] == [5]
    only_base = json.loads(sollama("report", "--compare", "2", "--json").stdout)
    assert only_base["base"]["run_ids"] == [2] and only_base["candidate"]["run_ids"] == [5]


def test_default_compare_without_a_matching_run_is_a_usage_error(sollama, history):
    with Store() as store:
        add_run(store, seed=4, load={**LOAD, "concurrency": 4})
    result = sollama("report", "--compare")
    assert result.exit_code == 2, result.output
    assert "same model and load" in result.stderr


def test_label_pooling(sollama, history):
    doc = json.loads(sollama("report", "--compare", "label:main", "label:pr", "--json").stdout)
    assert doc["base"]["run_ids"] == [1, 3]
    assert doc["base"]["figures"]["ok"] == 400
    assert doc["candidate"]["run_ids"] == [2]
    assert {m["key"]: m for m in doc["metrics"]}["e2el_p50"]["verdict"] == "regressed"


@pytest.mark.parametrize(("args", "needle"), [(["--compare", "label:nope", "1"], "label 'nope'"),
                                              (["--compare", "main", "1"], "run selector"),
                                              (["--compare", "1", "2", "3"], "at most"),
                                              (["1", "2"], "one run")])
def test_bad_selectors_are_usage_errors(sollama, history, args, needle):
    result = sollama("report", *args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr


def test_failed_and_interrupted_runs_are_noted(sollama):
    with Store() as store:
        add_run(store, seed=1)
        add_run(store, seed=2, failed=3, status="interrupted")
    doc = json.loads(sollama("report", "--compare", "--json").stdout)
    assert doc["candidate"]["figures"]["failed"] == 3
    assert any("3 failed" in w for w in doc["warnings"])
    assert any("interrupted" in w for w in doc["warnings"])


def test_runs_clocked_differently_are_noted(sollama):
    with Store() as store:
        base = add_run(store, seed=1, summary={"arrival_clock": "kernel"})
        cand = add_run(store, seed=2, summary={"arrival_clock": "event loop"})
        same = add_run(store, seed=3, summary={"arrival_clock": "kernel"})
    doc = json.loads(sollama("report", "--compare", str(base), str(cand), "--json").stdout)
    assert [w for w in doc["warnings"] if "clocked differently" in w] == [
        f"chunk arrivals were clocked differently (run {base}: kernel, run {cand}: event loop): TTFT/ITL "
        "differences of a few ms may be the client's own backlog, not the server"]
    doc = json.loads(sollama("report", "--compare", str(base), str(same), "--json").stdout)
    assert not [w for w in doc["warnings"] if "clocked" in w]
    shown = sollama("report", str(cand)).stdout.splitlines()
    assert [line.split(None, 1)[1].strip() for line in shown if line.startswith("clock")] == ["event loop"]


def test_export_csv_header_and_rows(sollama, history, tmp_path: Path):
    result = sollama("report", "export", "1", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][:6] == ["run_id", "idx", "warmup", "send_time", "ok", "ttft_s"]
    assert len(rows) == 1 + 201  # header + warm-up + 200 measured
    assert rows[1][2] == "1" and rows[2][2] == "0"
    assert rows[0][-3:] == ["phase", "gateway_queue_s", "turn"]
    assert rows[1][-3:] == ["warmup", "", ""] and rows[2][-3] == "run"
    assert float(rows[2][rows[0].index("ttft_s")]) == pytest.approx(0.1, rel=0.5)
    target = tmp_path / "run1.csv"
    written = sollama("report", "export", "1", "--csv", "-o", str(target))
    assert written.exit_code == 0, written.output
    assert written.stdout == ""
    assert target.read_text() == result.stdout
    assert "201 request rows" in written.stderr


def test_export_unknown_run(sollama, history):
    result = sollama("report", "export", "42", "--csv")
    assert result.exit_code == 1 and "no bench run 42" in result.stderr


def test_usage_summary(sollama):
    now = time.time()
    with Store() as store:
        for i in range(4):
            store.record_usage(UsageRow(time=now - 60 * i, command="generate", model="a:1", prompt_tokens=10,
                                        eval_tokens=20, total_s=1.0 + i, eval_s=0.5, ttft_s=0.2))
        store.record_usage(UsageRow(time=now, command="chat", model="a:1", outcome="error", error="boom"))
        store.record_usage(UsageRow(time=now - 10 * 86400, command="chat", model="b:2", prompt_tokens=3,
                                    eval_tokens=4, total_s=2.0, eval_s=1.0))
    doc = json.loads(sollama("report", "--usage", "--json").stdout)
    models = {m["model"]: m for m in doc["models"]}
    assert set(models) == {"a:1", "b:2"}
    a = models["a:1"]
    assert (a["requests"], a["ok"], a["errors"], a["prompt_tokens"], a["eval_tokens"]) == (5, 4, 1, 40, 80)
    assert a["median_total_s"] == pytest.approx(2.5)
    assert a["median_eval_rate"] == pytest.approx(40.0)
    recent = json.loads(sollama("report", "--usage", "--since", "7d", "--json").stdout)
    assert [m["model"] for m in recent["models"]] == ["a:1"]
    one = json.loads(sollama("report", "--usage", "--model", "b:2", "--json").stdout)
    assert [m["model"] for m in one["models"]] == ["b:2"]
    table = sollama("report", "--usage")
    assert table.exit_code == 0 and "a:1" in table.stdout and "MEDIAN TOK/S" in table.stdout
    md = sollama("report", "--usage", "--format", "md")
    assert md.stdout.startswith("| MODEL | REQUESTS |")


def test_usage_bad_window(sollama):
    result = sollama("report", "--usage", "--since", "yesterday")
    assert result.exit_code == 2 and "--since" in result.stderr


def test_corrupt_history_is_one_line_exit_1(sollama, isolated: Path):
    from ollama_ops import paths

    db = paths.history_db()
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    result = sollama("report")
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1
    assert "corrupt" in result.stderr and "Traceback" not in result.output


def test_listing_does_not_import_plotext(isolated: Path):
    code = ("import sys; from typer.testing import CliRunner; from ollama_ops.cli.app import app; "
            "r = CliRunner().invoke(app, ['report']); assert r.exit_code == 0, r.output; "
            "print('plotext' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_percent_helpers_are_finite(sollama, history):
    doc = json.loads(sollama("report", "--compare", "1", "3", "--json").stdout)
    for m in doc["metrics"]:
        assert all(math.isfinite(m["change"][k]) for k in ("point_pct", "lo_pct", "hi_pct"))


def test_too_few_samples_give_no_verdict_and_fail_the_gate_closed(sollama):
    with Store() as store:
        add_run(store, seed=1, n=3)
        add_run(store, seed=2, n=3, scale=2.0)  # twice as slow, but three requests prove little
    result = sollama("report", "--compare", "--fail-on-regression", "--json")
    assert result.exit_code == 1, result.output  # cannot decide: not a pass, and not a regression (6)
    assert result.stderr.startswith("error: cannot decide whether performance regressed: ttft_p50 needs 5 samples "
                                    "a side: base run 1 has 3, candidate run 2 has 3; tpot_p50 needs 5")
    assert json.loads(result.stdout)["undecided"] == [
        f"{key} needs 5 samples a side: base run 1 has 3, candidate run 2 has 3"
        for key in ("ttft_p50", "tpot_p50", "e2el_p50", "output_throughput")]
    doc = json.loads(result.stdout)
    verdicts = {m["key"]: m["verdict"] for m in doc["metrics"]}
    assert verdicts.pop("itl_p50") == "regressed"  # 45 pooled gaps a side are enough
    assert set(verdicts.values()) == {"n/a"} and doc["regressed"] == []
    assert all(m["change"]["point_pct"] > 50 or m["higher_is_better"] for m in doc["metrics"])
    assert any("too few samples" in w for w in doc["warnings"])


def test_report_run_shows_the_server_breakdown(sollama, history):
    doc = json.loads(sollama("report", "1", "--json").stdout)
    parts = {p["part"]: p for p in doc["breakdown"]}
    assert parts["prompt eval"]["median_s"] == pytest.approx(0.01)
    assert parts["queue + overhead (E2EL − total)"]["median_s"] == pytest.approx(0.005)
    assert 0.9 < sum(p["median_share"] for p in doc["breakdown"]) < 1.1
    plain = sollama("report", "1", "--no-charts").stdout
    assert "SERVER BREAKDOWN (MEDIAN)" in plain and "TTFT (ms)" not in plain


@pytest.mark.parametrize(("text", "run_id"), [("12", 12), ("#12", 12), (" 7 ", 7), ("²", None), ("١٢", 12),
                                              ("x1", None), ("", None), ("-3", None), ("1.0", None)])
def test_parse_run_id(text, run_id):
    from ollama_ops.services.report import parse_run_id

    assert parse_run_id(text) == run_id


@pytest.mark.parametrize("args", [["²"], ["export", "²"], ["--compare", "²", "1"]])
def test_a_run_id_of_other_digits_is_a_usage_error(sollama, args):
    # '²'.isdigit() is true but int('²') fails: one parser (services.report.parse_run_id) for every run selector
    result = sollama("report", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "internal error" not in result.stderr
