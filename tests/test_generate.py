"""`sollama generate` through the public CLI: the real daemon for the contract, the stub for the faults."""

from __future__ import annotations

import json

import pytest

from ollama_ops.edges.store import Store

SEEDED = ("--max-tokens", "8", "--seed", "1", "--temperature", "0")


def usage_rows() -> list:
    with Store() as store:
        return store.usage_rows()


# -- against the real daemon ---------------------------------------------------------------------------------------

@pytest.mark.ollama
def test_stdout_is_exactly_the_text_of_the_same_seeded_json_request(sollama, ollama):
    plain = sollama("--host", ollama.host, "generate", "-m", ollama.model, "Say hi", *SEEDED)
    assert plain.exit_code == 0, plain.output
    as_json = sollama("--host", ollama.host, "generate", "-m", ollama.model, "Say hi", *SEEDED, "--json")
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["text"]
    assert plain.stdout == doc["text"]  # byte-exact: no trailing newline off a terminal, nothing else
    assert plain.stderr == ""


@pytest.mark.ollama
def test_json_document_has_nonzero_timings(sollama, ollama):
    result = sollama("--host", ollama.host, "generate", "-m", ollama.model, "Say hi", *SEEDED, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    t = doc["timings"]
    assert doc["model"] == ollama.model
    assert doc["done_reason"] in ("stop", "length")
    assert 0 < t["eval_count"] <= 8
    assert t["prompt_eval_count"] > 0
    assert t["total_s"] > 0 and t["eval_s"] > 0 and t["load_s"] > 0
    assert t["eval_rate"] > 0
    assert 0 < doc["ttft_s"] <= doc["wall_s"]


@pytest.mark.ollama
def test_verbose_puts_the_stats_block_on_stderr_only(sollama, ollama):
    result = sollama("--host", ollama.host, "generate", "-m", ollama.model, "Say hi", *SEEDED, "--verbose")
    assert result.exit_code == 0, result.output
    for label in ("total duration:", "load duration:", "prompt eval count:", "prompt eval duration:",
                  "prompt eval rate:", "eval count:", "eval duration:", "eval rate:"):
        assert label in result.stderr
        assert label not in result.stdout
    eval_line = next(line for line in result.stderr.splitlines() if line.startswith("eval count:"))
    assert int(eval_line.split()[2]) > 0


@pytest.mark.ollama
def test_unknown_model_lists_the_installed_ones(sollama, ollama):
    result = sollama("--host", ollama.host, "generate", "-m", "smollm3:135m", "Say hi")
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "model 'smollm3:135m' not found; installed:" in result.stderr
    assert "smollm2:135m" in result.stderr


@pytest.mark.ollama
def test_usage_row_records_model_and_eval_tokens(sollama, ollama):
    result = sollama("--host", ollama.host, "generate", "-m", ollama.model, "Say hi", *SEEDED, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = usage_rows()
    assert len(rows) == 1
    row = rows[0]
    assert (row.command, row.model, row.outcome) == ("generate", ollama.model, "ok")
    assert row.eval_tokens == doc["timings"]["eval_count"] > 0
    assert row.prompt_tokens == doc["timings"]["prompt_eval_count"]
    assert row.prompt is None  # no prompt text without --log-prompts


@pytest.mark.ollama
@pytest.mark.slow
def test_prompt_from_stdin_and_system_and_json_format(sollama, ollama):
    result = sollama("--host", ollama.host, "generate", "-m", ollama.model, "-", "--format", "json",
                     "--system", "Answer in JSON.", *SEEDED, input="Give a colour as JSON.")
    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().startswith("{")


# -- against the stub ----------------------------------------------------------------------------------------------

def test_markup_in_model_output_stays_literal(sollama, stub):
    stub.configure(tokens=3, token_text=["[bold]", "x", "[/bold]"])
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi")
    assert result.exit_code == 0, result.output
    assert result.stdout == "[bold]x[/bold]"


def test_error_line_mid_stream_keeps_the_text_so_far(sollama, stub):
    stub.configure(tokens=5, token_text="ab ", error_after=2)
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi")
    assert result.exit_code == 1, result.output
    assert result.stdout == "ab ab "
    assert "stub fault" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert usage_rows()[0].outcome == "error"


def test_disconnect_mid_stream_exits_1_with_partial_text(sollama, stub):
    stub.configure(tokens=5, token_text="z", disconnect_after=3)
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi")
    assert result.exit_code == 1, result.output
    assert result.stdout == "zzz"
    assert "mid-stream" in result.stderr or "before its final chunk" in result.stderr


def test_stall_exits_5_and_keeps_the_partial_text(sollama, stub):
    stub.configure(tokens=5, token_text="s", stall_after=2)
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi", "--timeout", "0.5")
    assert result.exit_code == 5, result.output
    assert result.stdout == "ss"
    assert "stalled" in result.stderr
    row = usage_rows()[0]
    assert row.outcome == "timeout"
    assert row.total_s >= 0.5  # the wall time it held, since the server never sent its timings


def test_busy_server_exits_1_with_busy_message(sollama, stub):
    stub.configure(status=503)
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi")
    assert result.exit_code == 1, result.output
    assert "server busy" in result.stderr
    assert result.stdout == ""


def test_server_down_exits_4_with_start_hint(sollama):
    from tests.conftest import free_port

    result = sollama("--host", f"127.0.0.1:{free_port()}", "generate", "-m", "m", "hi")
    assert result.exit_code == 4, result.output
    assert "sollama start" in result.stderr


def test_options_flags_and_keep_alive_reach_the_server(sollama, stub):
    stub.configure(tokens=2)
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi", "-o", "top_k=20", "--temperature",
                     "0.3", "--seed", "7", "--num-ctx", "512", "--max-tokens", "1", "--keep-alive", "300", "--raw",
                     "--system", "be brief")
    assert result.exit_code == 0, result.output
    body = [b for m, p, b in stub.requests if p == "/api/generate"][-1]
    assert body["options"] == {"top_k": 20, "temperature": 0.3, "seed": 7, "num_ctx": 512, "num_predict": 1}
    assert body["keep_alive"] == 300 and body["raw"] is True and body["system"] == "be brief"
    assert result.stdout == "tok "


def test_no_stream_prints_the_whole_text(sollama, stub):
    stub.configure(tokens=3, token_text="n")
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi", "--no-stream", "--json")
    assert result.exit_code == 0, result.output
    body = [b for m, p, b in stub.requests if p == "/api/generate"][-1]
    assert body["stream"] is False
    assert json.loads(result.stdout)["text"] == "nnn"


def test_prompt_and_file_are_joined_and_logged_with_log_prompts(sollama, stub, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("the file body")
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "Summarize:", "--file", str(doc),
                     "--log-prompts")
    assert result.exit_code == 0, result.output
    body = [b for m, p, b in stub.requests if p == "/api/generate"][-1]
    assert body["prompt"] == "Summarize:\n\nthe file body"
    assert usage_rows()[0].prompt == "Summarize:\n\nthe file body"


def test_schema_file_is_sent_as_format(sollama, stub, tmp_path):
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}}
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi", "--format", str(path))
    assert result.exit_code == 0, result.output
    assert [b for m, p, b in stub.requests if p == "/api/generate"][-1]["format"] == schema


@pytest.mark.parametrize("args, message", [
    (("--format", "nope.json"), "--format must be 'json' or a JSON schema file"),
    (("-o", "temprature=1"), "did you mean 'temperature'"),
    (("--file", "/nonexistent/x"), "cannot read --file"),
])
def test_bad_arguments_exit_2(sollama, stub, args, message):
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert stub.request_count == 0


def test_empty_stdin_without_prompt_is_a_usage_error(sollama, stub):
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "-", input="")
    assert result.exit_code == 2, result.output
    assert "the prompt is empty" in result.stderr
    assert stub.request_count == 0


def test_store_failure_is_a_warning_not_an_error(sollama, stub, isolated):
    # A directory where the history file should be: sqlite cannot open it.
    (isolated / "data").mkdir(exist_ok=True)
    (isolated / "data" / "history.sqlite3").mkdir()
    stub.configure(tokens=2, token_text="w")
    result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi")
    assert result.exit_code == 0, result.output
    assert result.stdout == "ww"
    assert "warning: usage not recorded" in result.stderr
