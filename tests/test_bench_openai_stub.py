"""`sollama bench --api openai-chat|openai-completions` and synthetic workloads against the protocol stub's /v1 SSE
routes: server counts, faults with their kinds, headers, lengths checked, input refused at the edge."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ollama_ops.edges.store import Store


def _bench(sollama, stub, *args: str):
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "--json", *args)
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


@pytest.mark.parametrize("api", ["openai-chat", "openai-completions"])
def test_openai_apis_count_with_the_servers_usage(sollama, stub, api: str) -> None:
    stub.configure(tokens=8, count_words=True)
    result, data = _bench(sollama, stub, "--api", api, "-n", "6", "-c", "2", "--max-tokens", "5",
                          "-H", "X-Team: blue", "--api-key", "s3cret-key")
    assert result.exit_code == 0, result.output
    s = data["summary"]
    assert (s["requests_ok"], s["output_tokens"], s["output_tokens_source"]) == (6, 30, "server")
    assert s["itl"]["n"] == 6 * 4 and s["ttft"]["n"] == 6
    assert s["breakdown"] is None and data["breakdown_absent"].startswith("absent")
    assert data["lengths"]["output_checked"] == 6 and data["lengths"]["output_overran"] == 0
    assert data["load"]["headers"] == ["Authorization", "X-Team"]
    assert stub.last_headers["authorization"] == "Bearer s3cret-key" and stub.last_headers["x-team"] == "blue"
    path = "/v1/chat/completions" if api == "openai-chat" else "/v1/completions"
    bodies = [b for m, p, b in stub.requests if p == path]
    assert len(bodies) == 7 and all(b["max_tokens"] == 5 and b["stream_options"] == {"include_usage": True}
                                    for b in bodies)
    with Store() as store:
        run = store.run(data["run_id"])
        assert run.api == api and run.request_count == 6
        dump = "\n".join(sqlite3.connect(store.path).iterdump())
    assert "s3cret-key" not in dump and "blue" not in dump  # header values are never stored
    assert "s3cret-key" not in result.output


def test_table_says_the_breakdown_is_absent(sollama, stub) -> None:
    stub.configure(tokens=3)
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "--api", "openai-chat", "-n", "2")
    assert result.exit_code == 0, result.output
    assert "server breakdown: absent: the OpenAI API reports no server timings" in result.stdout


def test_a_cut_sse_stream_is_a_disconnect_with_its_partial_sample(sollama, stub) -> None:
    stub.configure(tokens=8, disconnect_after=3)
    result, data = _bench(sollama, stub, "--api", "openai-chat", "-n", "4", "--warmup", "0")
    assert result.exit_code == 1 and "every request failed" in result.stderr, result.output  # the fail-closed gate
    assert data["summary"]["errors"] == {"disconnect": 4}
    with Store() as store:
        rows = store.requests(data["run_id"])
    assert len(rows) == 4
    for row in rows:  # the part that arrived is kept: 3 text chunks, their times and gaps
        assert (row.ok, row.error_kind, row.output_tokens, row.output_tokens_source) == (False, "disconnect", 3,
                                                                                         "chunks")
        assert row.ttft is not None and row.e2el >= row.ttft and len(row.itl) == 2


@pytest.mark.parametrize(("script", "kind"), [
    ({"error_after": 2}, "server_error"), ({"malformed_after": 1}, "malformed"), ({"status": 503}, "http_503"),
    ({"omit_done": True, "omit_usage": True, "tokens": 2}, None),
])
def test_sse_faults(sollama, stub, script: dict, kind: str | None) -> None:
    stub.configure(**({"tokens": 4} | script))
    result, data = _bench(sollama, stub, "--api", "openai-completions", "-n", "3", "--warmup", "0")
    assert result.exit_code == (0 if kind is None else 1), result.output
    if kind is None:  # a finish reason but no [DONE] and no usage: complete, counted by chunks, with a warning
        assert data["summary"]["requests_ok"] == 3 and data["summary"]["output_tokens_source"] == "chunks"
        assert any("eval_count" in w for w in data["warnings"])
    else:
        assert data["summary"]["errors"] == {kind: 3}


def test_overrun_and_early_stop_are_warned(sollama, stub) -> None:
    stub.configure(tokens=8, ignore_max_tokens=True)
    result, data = _bench(sollama, stub, "--api", "openai-chat", "-n", "3", "--max-tokens", "4")
    assert result.exit_code == 0, result.output
    assert data["lengths"]["output_overran"] == 3
    assert any("3 of 3 answers overran their max_tokens" in w for w in data["warnings"])
    stub.configure(tokens=2, ignore_max_tokens=False)
    result, data = _bench(sollama, stub, "--api", "generate", "-n", "3", "--max-tokens", "4")
    assert data["lengths"]["output_early"] == 3
    assert any("3 of 3 answers stopped before their max_tokens" in w for w in data["warnings"])


@pytest.mark.parametrize("api", ["generate", "openai-chat"])
def test_synthetic_lengths_hit_the_servers_count(sollama, stub, api: str) -> None:
    """The stub counts words + 5: the fit is exact after three probes, every prompt has its requested length."""
    stub.configure(tokens=6, count_words=True)
    result, data = _bench(sollama, stub, "--api", api, "-n", "20", "--warmup", "1", "--prompt-tokens", "64:10",
                          "--output-tokens", "4:1:2:5", "--prefix-tokens", "16", "--seed", "3")
    assert result.exit_code == 0, result.output
    syn, lengths = data["synthetic"], data["lengths"]
    assert (syn["overhead_tokens"], syn["tokens_per_word"], syn["exact"], syn["probes"]) == (5, 1, True, 3)
    assert syn["prompts"] == 21 and data["load"]["prompt_tokens"] == "64:10"
    assert lengths["prompt_off_max"] == 0 and lengths["prompt_requested"] == lengths["prompt_achieved"]
    assert lengths["prompt_requested"]["n"] == 20 and lengths["prompt_requested"]["min"] >= 16 + 1
    assert lengths["output_requested"] == lengths["output_achieved"]
    assert 2 <= lengths["output_requested"]["min"] <= lengths["output_requested"]["max"] <= 5
    inference = [b for m, p, b in stub.requests if p.startswith(("/api/generate", "/v1/"))]
    prompts = [b.get("prompt") or b["messages"][0]["content"] for b in inference[3:]]  # after the probes
    prefix = " ".join(prompts[0].split()[:16])
    assert all(p.startswith(prefix + " ") for p in prompts) and len(set(prompts)) == 21
    # the same seed makes the same requests
    first = [b for b in inference[3:]]
    stub.reset()
    stub.configure(tokens=6, count_words=True)
    _bench(sollama, stub, "--api", api, "-n", "20", "--warmup", "1", "--prompt-tokens", "64:10",
           "--output-tokens", "4:1:2:5", "--prefix-tokens", "16", "--seed", "3")
    again = [b for m, p, b in stub.requests if p.startswith(("/api/generate", "/v1/"))][3:]
    assert again == first


def test_synthetic_corrects_prompts_one_by_one_where_the_fit_is_rough(sollama, stub) -> None:
    """The stub's default count (characters / 4) is not one token a word: each prompt is probed and stepped."""
    stub.configure(tokens=2)
    result, data = _bench(sollama, stub, "-n", "8", "--warmup", "0", "--prompt-tokens", "100")
    assert result.exit_code == 0, result.output
    assert data["synthetic"]["exact"] is False and data["synthetic"]["probes"] > 3
    assert data["lengths"]["prompt_off_max"] <= 1


def test_synthetic_below_the_template_is_refused(sollama, stub) -> None:
    stub.configure(count_words=True)
    result, _ = _bench(sollama, stub, "--prompt-tokens", "4")
    assert result.exit_code == 2 and "the server counts at least 6 tokens" in result.stderr


def test_compare_pairs_openai_runs(sollama, stub) -> None:
    stub.configure(tokens=4)
    for _ in range(2):
        result, _ = _bench(sollama, stub, "--api", "openai-chat", "-n", "12", "--warmup", "0")
        assert result.exit_code == 0, result.output
    result = sollama("report", "--compare", "1", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)


@pytest.mark.parametrize(("args", "why"), [
    (["--api", "openai"], "--api must be one of"),
    (["-H", "Host: x"], "sets this header itself"),
    (["-H", "bad"], "NAME:VALUE"),
    (["--prompt-tokens", "x"], "--prompt-tokens must be whole numbers"),
    (["--prompt-tokens", "64", "--prompts", "short"], "exclude each other"),
    (["--output-tokens", "16"], "add --prompt-tokens"),
    (["--prompt-tokens", "64", "--output-tokens", "8", "--max-tokens", "4"], "exclude each other"),
    (["--prompt-tokens", "64", "--prefix-tokens", "-1"], "--prefix-tokens"),
    (["--api", "openai-chat", "-o", "num_ctx=128"], "no OpenAI API equivalent"),
    (["--api", "openai-completions", "--prompts", "MSGS"], "use --api openai-chat"),
])
def test_bad_input_is_a_usage_error(sollama, stub, tmp_path, args: list[str], why: str) -> None:
    msgs = tmp_path / "m.jsonl"
    msgs.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    args = [str(msgs) if a == "MSGS" else a for a in args]
    result, _ = _bench(sollama, stub, *args)
    assert result.exit_code == 2, result.output
    assert why in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_report_of_an_openai_run_says_the_breakdown_is_absent(sollama, stub) -> None:
    stub.configure(tokens=3, count_words=True)
    result, _ = _bench(sollama, stub, "--api", "openai-chat", "-n", "3", "--prompt-tokens", "30",
                       "--output-tokens", "2", "--prefix-tokens", "8")
    assert result.exit_code == 0, result.output
    table = sollama("report", "1")
    assert table.exit_code == 0, table.output
    assert "server breakdown: absent: the OpenAI API" in table.stdout
    assert "prompt_tokens=30+8 output_tokens=2" in table.stdout
    md = sollama("report", "1", "--format", "md")
    assert "Server breakdown: absent: the OpenAI API" in md.stdout
