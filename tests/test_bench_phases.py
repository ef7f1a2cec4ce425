"""Warm-up and cool-down by count, time or percentage (`--warmup` / `--cooldown`): the pure timeline that gives
each request its phase, and runs against the stub: excluded from every figure and the gate, stored with their
phase, marked in the timelines (JSON, terminal, HTML)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ollama_ops.core.bench.phases import PhaseSize, PhaseTimeline, parse_phase, trace_counts
from ollama_ops.edges.store import SCHEMA_VERSION, Store


def _bench(sollama, stub, *args: str):
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "--json", *args)
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def _phases(run_id: int) -> list[str]:
    with Store() as store:
        return [r.phase for r in store.requests(run_id, include_warmup=True)]


# -- pure ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "size"), [
    ("10", PhaseSize(count=10)), ("0", PhaseSize(count=0)), ("5s", PhaseSize(seconds=5.0)),
    ("1m30s", PhaseSize(seconds=90.0)), ("250ms", PhaseSize(seconds=0.25)), ("10%", PhaseSize(percent=10.0)),
    ("12.5%", PhaseSize(percent=12.5)),
])
def test_parse_phase(text: str, size: PhaseSize) -> None:
    assert parse_phase(text) == size


@pytest.mark.parametrize("text", ["1.5", "abc", "%", "ten%", "5 apples", ""])
def test_parse_phase_refuses(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_phase(text)
    assert "count" in str(info.value) and "\n" not in str(info.value)


def test_timeline_by_count_then_time() -> None:
    timeline = PhaseTimeline(PhaseSize(count=2), 3, None, PhaseSize(seconds=1.0))
    got = [timeline.next(t) for t in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.2, 1.6, 1.7)]
    # the cool-down's second starts at its first request (0.5): 1.2 is inside it, 1.6 is not
    assert got == ["warmup", "warmup", "run", "run", "run", "cooldown", "cooldown", None, None]
    assert timeline.counts == [2, 3, 2] and timeline.starts == [0.0, 0.2, 0.5]


def test_timeline_by_time_and_duration() -> None:
    timeline = PhaseTimeline(PhaseSize(seconds=1.0), None, 2.0, PhaseSize(count=1))
    got = [timeline.next(t) for t in (0.0, 0.9, 1.0, 2.5, 2.99, 3.0, 3.1)]
    assert got == ["warmup", "warmup", "run", "run", "run", "cooldown", None]


def test_percentages_are_of_the_measured_phase() -> None:
    assert PhaseSize(percent=10).resolve(95, None) == PhaseSize(count=10)  # rounded up: a share is never lost
    assert PhaseSize(percent=20).resolve(10, None) == PhaseSize(count=2)
    assert PhaseSize(percent=25).resolve(None, 60.0) == PhaseSize(seconds=15.0)
    timeline = PhaseTimeline(PhaseSize(percent=20), 10, None, PhaseSize(percent=10))
    got = [timeline.next(0.0) for _ in range(14)]
    assert got == ["warmup"] * 2 + ["run"] * 10 + ["cooldown"] + [None]


def test_zero_phases_and_trace_counts() -> None:
    timeline = PhaseTimeline(PhaseSize(count=0), 2, None, PhaseSize(seconds=0.0))
    assert [timeline.next(0.0) for _ in range(3)] == ["run", "run", None]
    offsets = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    assert trace_counts(offsets, PhaseSize(count=2), PhaseSize(count=1)) == (2, 1)
    assert trace_counts(offsets, PhaseSize(seconds=1.0), PhaseSize(seconds=1.0)) == (2, 2)
    assert trace_counts(offsets, PhaseSize(percent=30), PhaseSize(percent=10)) == (3, 1)


# -- runs against the stub -----------------------------------------------------------------------------------------

def test_counts_closed_loop_warm_up_and_cool_down_are_stored_and_excluded(sollama, stub) -> None:
    stub.configure(tokens=3)
    result, data = _bench(sollama, stub, "-n", "6", "--warmup", "2", "--cooldown", "3", "-c", "2")
    assert result.exit_code == 0, result.output
    assert data["summary"]["requests_ok"] == 6 and data["summary"]["ttft"]["n"] == 6
    assert data["load"]["warmup"] == 2 and data["load"]["cooldown"] == 3
    assert _phases(data["run_id"]) == ["warmup"] * 2 + ["run"] * 6 + ["cooldown"] * 3
    spans = {p["phase"]: p for p in data["phases"]}
    assert [p["phase"] for p in data["phases"]] == ["warmup", "run", "cooldown"]
    assert {k: (v["requests"], v["excluded"]) for k, v in spans.items()} == {
        "warmup": (2, True), "run": (6, False), "cooldown": (3, True)}
    assert spans["warmup"]["first_send_s"] <= spans["run"]["first_send_s"] <= spans["cooldown"]["first_send_s"]
    assert len([p for m, p, b in stub.requests if p == "/api/generate"]) == 11
    with Store() as store:
        run = store.runs()[-1]
    assert run.request_count == 6  # the history's count of a run is its measured requests


def test_failures_in_the_warm_up_are_not_gated(sollama, stub) -> None:
    stub.configure(tokens=2, status=500, error="cold start", status_times=2)
    result, data = _bench(sollama, stub, "-n", "3", "--warmup", "2", "-c", "1")
    assert result.exit_code == 0, result.output  # the two failures were warm-up: the gate sees none
    assert data["summary"]["requests_failed"] == 0 and data["summary"]["requests_ok"] == 3
    with Store() as store:
        rows = store.requests(data["run_id"], include_warmup=True)
    assert [(r.phase, r.ok) for r in rows] == [("warmup", False)] * 2 + [("run", True)] * 3


def test_percentages_of_requests(sollama, stub) -> None:
    stub.configure(tokens=2)
    result, data = _bench(sollama, stub, "-n", "10", "--warmup", "20%", "--cooldown", "10%", "-c", "3")
    assert result.exit_code == 0, result.output
    assert data["load"]["warmup"] == "20%" and data["load"]["cooldown"] == "10%"
    assert _phases(data["run_id"]) == ["warmup"] * 2 + ["run"] * 10 + ["cooldown"]


def test_a_timed_warm_up_comes_before_every_measured_send(sollama, stub) -> None:
    stub.configure(tokens=2, token_delay=0.01)
    result, data = _bench(sollama, stub, "-n", "4", "--warmup", "100ms", "--cooldown", "1", "-c", "1")
    assert result.exit_code == 0, result.output
    with Store() as store:
        rows = store.requests(data["run_id"], include_warmup=True)
    phases = [r.phase for r in rows]
    warm = phases.count("warmup")
    assert warm >= 1 and phases == ["warmup"] * warm + ["run"] * 4 + ["cooldown"]
    assert max(r.send_time for r in rows[:warm]) < min(r.send_time for r in rows[warm:])
    assert data["summary"]["requests_ok"] == 4


def test_open_loop_phases_follow_the_arrival_schedule(sollama, stub) -> None:
    stub.configure(tokens=2)
    result, data = _bench(sollama, stub, "--rate", "100", "--arrival", "constant", "-n", "5", "--warmup", "2",
                          "--cooldown", "2")
    assert result.exit_code == 0, result.output
    assert _phases(data["run_id"]) == ["warmup"] * 2 + ["run"] * 5 + ["cooldown"] * 2
    assert data["send_lag"]["n"] == 5 and data["summary"]["requests_ok"] == 5


def test_trace_phases_come_out_of_the_trace(sollama, stub, tmp_path) -> None:
    stub.configure(tokens=2)
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(json.dumps({"timestamp": i * 0.01, "prompt": f"p{i}"}) for i in range(10)) + "\n")
    result, data = _bench(sollama, stub, "--trace", str(trace), "--warmup", "2", "--cooldown", "30ms")
    assert result.exit_code == 0, result.output
    # entries at 0.07, 0.08, 0.09 s are in the trace's last 30 ms (after 0.06)
    assert _phases(data["run_id"]) == ["warmup"] * 2 + ["run"] * 5 + ["cooldown"] * 3
    assert data["summary"]["requests_ok"] == 5 and data["load"]["requests"] == 5
    sent = [b["prompt"] for m, p, b in stub.requests if p == "/api/generate"]
    assert sent == [f"p{i}" for i in range(10)]  # the whole trace, once, in order


@pytest.mark.parametrize(("args", "why"), [
    (["--warmup", "1.5"], "'--warmup'"), (["--cooldown", "150%"], "'--cooldown'"),
    (["--warmup", "-2"], "'--warmup'"), (["--cooldown", "abc"], "'--cooldown'"),
    (["--warmup", "8000000000h"], "a week"), (["--warmup", "nan%"], "finite"),
])
def test_bad_phase_sizes_are_one_line_usage_errors(sollama, stub, args: list[str], why: str) -> None:
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and why in result.stderr, result.stderr
    assert stub.requests == []


def test_phases_leave_no_trace_request_to_measure(sollama, stub, tmp_path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"timestamp": 0, "prompt": "a"}\n{"timestamp": 1, "prompt": "b"}\n')
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "--trace", str(trace), "--warmup", "1",
                     "--cooldown", "1")
    assert result.exit_code == 2 and "leave no request" in result.stderr, result.output


def test_timeline_marks_in_the_terminal_chart_report_and_html(sollama, stub, tmp_path) -> None:
    stub.configure(tokens=3)
    page = tmp_path / "run.html"
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "-n", "6", "--warmup", "2",
                     "--cooldown", "2", "-c", "2", "--report", "--html", str(page))
    assert result.exit_code == 0, result.output
    assert "w = warm-up, c = cool-down: sent, stored, and excluded from every figure" in result.stdout
    assert "warm-up 2 sent" in result.stdout and "cool-down 2 sent" in result.stdout
    html = page.read_text()
    assert "warm-up E2EL ms (excluded)" in html and "cool-down E2EL ms (excluded)" in html
    shown = sollama("report", "1", "--json")
    doc = json.loads(shown.stdout)
    assert doc["excluded"] == {"warmup": 2, "cooldown": 2}
    assert [s["phase"] for s in doc["samples"]].count("run") == 6 and doc["metrics"]["e2el"]["n"] == 6
    text = sollama("report", "1").stdout
    assert "2 warm-up, 2 cool-down (stored, not in the figures)" in text


# -- the history's migration ---------------------------------------------------------------------------------------

def _old_history(path, version: int) -> None:
    """A history file as sollama wrote it before request phases (schema 2; schema 1 also lacked the usage key
    columns), with a warm-up and a measured row."""
    conn = sqlite3.connect(path)
    script = """
        CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT, started_at REAL NOT NULL,
            finished_at REAL, status TEXT NOT NULL DEFAULT 'running', host TEXT NOT NULL DEFAULT '',
            ollama_version TEXT, model TEXT NOT NULL, model_digest TEXT, api TEXT NOT NULL DEFAULT 'generate',
            load TEXT NOT NULL DEFAULT '{}', sollama_version TEXT, system TEXT NOT NULL DEFAULT '{}', summary TEXT,
            sweep_id TEXT, sweep_step INTEGER, writer_pid INTEGER, writer_node TEXT);
        CREATE TABLE requests (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, idx INTEGER NOT NULL,
            warmup INTEGER NOT NULL DEFAULT 0, send_time REAL NOT NULL, ttft REAL, e2el REAL,
            itl TEXT NOT NULL DEFAULT '[]', output_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens_source TEXT NOT NULL DEFAULT 'server', prompt_tokens INTEGER NOT NULL DEFAULT 0,
            load_s REAL, prompt_eval_s REAL, eval_s REAL, total_s REAL, queue_s REAL, ok INTEGER NOT NULL,
            error_kind TEXT, error TEXT, PRIMARY KEY (run_id, idx));
        CREATE TABLE usage (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, command TEXT NOT NULL,
            model TEXT NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0, eval_tokens INTEGER NOT NULL DEFAULT 0,
            total_s REAL NOT NULL DEFAULT 0, load_s REAL NOT NULL DEFAULT 0, prompt_eval_s REAL NOT NULL DEFAULT 0,
            eval_s REAL NOT NULL DEFAULT 0, ttft_s REAL, outcome TEXT NOT NULL, error TEXT, prompt TEXT, key TEXT,
            request_id TEXT);
        INSERT INTO usage (time, command, model, outcome) VALUES (1.0, 'generate', 'm', 'ok');
        INSERT INTO runs (id, started_at, status, model) VALUES (1, 1000.0, 'completed', 'm');
        INSERT INTO requests (run_id, idx, warmup, send_time, ttft, e2el, ok) VALUES (1, 0, 1, 1000.0, 0.1, 0.2, 1);
        INSERT INTO requests (run_id, idx, warmup, send_time, ttft, e2el, ok) VALUES (1, 1, 0, 1000.5, 0.1, 0.3, 1);
        PRAGMA user_version = 2;
    """
    if version == 1:
        script = script.replace(", key TEXT,\n            request_id TEXT)", ")").replace("= 2;", "= 1;")
    conn.executescript(script)
    conn.close()


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_history_is_migrated_and_keeps_working(tmp_path, version: int) -> None:
    path = tmp_path / "old.db"
    _old_history(path, version)
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        rows = store.requests(1, include_warmup=True)
        assert [(r.idx, r.phase, r.warmup, r.gateway_queue_s, r.turn) for r in rows] == [
            (0, "warmup", True, None, None), (1, "run", False, None, None)]
        assert [r.idx for r in store.requests(1)] == [1] and store.run(1).request_count == 1
        assert [(u.command, u.key) for u in store.usage_rows()] == [("generate", None)]
    with Store(path) as store:  # opening it again changes nothing
        assert [r.phase for r in store.requests(1, include_warmup=True)] == ["warmup", "run"]
