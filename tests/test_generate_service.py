"""The generate service's pure helpers, its usage recording, and Ctrl-C through the whole CLI."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ollama_ops.client.protocol import GenerateRequest
from ollama_ops.client.sync import OllamaClient
from ollama_ops.errors import ServerError, UsageError
from ollama_ops.render.generate import generate_document, stats_lines
from ollama_ops.services.generate import (
    UsagePolicy,
    build_options,
    parse_keep_alive,
    read_prompt,
    resolve_format,
    run_generation,
)


@pytest.mark.parametrize("pairs, flags, expected", [
    (None, {}, {}),
    (["top_k=5"], {"temperature": 0}, {"top_k": 5, "temperature": 0.0}),
    (["temperature=0.9"], {"temperature": 0.1}, {"temperature": 0.1}),  # the shortcut wins
    ([], {"max_tokens": 8, "seed": 1, "num_ctx": 2048}, {"num_predict": 8, "seed": 1, "num_ctx": 2048}),
    (["stop=a", "stop=b"], {}, {"stop": ["a", "b"]}),
])
def test_build_options(pairs, flags, expected):
    assert build_options(pairs, **flags) == expected


@pytest.mark.parametrize("value, expected", [
    (None, None), ("300", 300), ("-1", -1), ("1.5", 1.5), ("10m", "10m"), (" 0 ", 0), (60, 60),
])
def test_parse_keep_alive(value, expected):
    assert parse_keep_alive(value) == expected


def test_parse_keep_alive_rejects_empty():
    with pytest.raises(UsageError):
        parse_keep_alive("  ")


@pytest.mark.parametrize("prompt, file_text, stdin, tty, expected", [
    ("hi", None, "ignored", False, "hi"),
    ("-", None, "from stdin", True, "from stdin"),
    (None, None, "piped", False, "piped"),
    (None, "file body", "ignored", False, "file body"),
    ("Summarize:", "file body", "", True, "Summarize:\n\nfile body"),
])
def test_read_prompt(tmp_path, prompt, file_text, stdin, tty, expected):
    file = None
    if file_text is not None:
        file = tmp_path / "p.txt"
        file.write_text(file_text)
    assert read_prompt(prompt, file=file, stdin_text=lambda: stdin, stdin_is_tty=tty) == expected


def test_read_prompt_without_any_source_on_a_terminal_is_a_usage_error():
    with pytest.raises(UsageError, match="no prompt"):
        read_prompt(None, file=None, stdin_text=lambda: "", stdin_is_tty=True)


def test_resolve_format(tmp_path: Path):
    assert resolve_format(None) is None
    assert resolve_format("json") == "json"
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object"}')
    assert resolve_format(str(schema)) == {"type": "object"}
    schema.write_text("[1]")
    with pytest.raises(UsageError, match="must be an object"):
        resolve_format(str(schema))
    schema.write_text("{nope")
    with pytest.raises(UsageError, match="cannot read the JSON schema"):
        resolve_format(str(schema))


def test_interrupt_records_outcome_interrupted_and_keeps_what_was_delivered(stub):
    stub.configure(tokens=10, token_text="p")
    rows, shown = [], []

    def on_text(text: str) -> None:
        shown.append(text)
        if len(shown) == 3:
            raise KeyboardInterrupt

    with OllamaClient(stub.url) as client, pytest.raises(KeyboardInterrupt):
        run_generation(client, GenerateRequest(model="stub-model", prompt="hi"), on_text=on_text,
                       usage=UsagePolicy(record=rows.append))
    assert shown == ["p", "p", "p"]
    assert len(rows) == 1 and rows[0].outcome == "interrupted" and rows[0].eval_tokens == 0
    assert rows[0].error == "KeyboardInterrupt"


def test_failing_recorder_warns_and_never_masks_the_error(stub):
    stub.configure(tokens=4, error_after=1)
    warnings = []

    def broken(row) -> None:
        raise OSError("disk full")

    with OllamaClient(stub.url) as client, pytest.raises(ServerError, match="stub fault"):
        run_generation(client, GenerateRequest(model="stub-model", prompt="hi"),
                       usage=UsagePolicy(record=broken, on_warning=warnings.append))
    assert warnings == ["usage not recorded: OSError: disk full"]


def test_chat_request_logs_the_last_user_message_only_when_asked(stub):
    rows = []
    req = GenerateRequest(model="stub-model", messages=[{"role": "user", "content": "first"},
                                                        {"role": "assistant", "content": "a"},
                                                        {"role": "user", "content": "second"}])
    with OllamaClient(stub.url) as client:
        run_generation(client, req, usage=UsagePolicy(command="chat", record=rows.append))
        run_generation(client, req, usage=UsagePolicy(command="chat", log_prompt=True, record=rows.append))
    assert [r.prompt for r in rows] == [None, "second"]
    assert {r.command for r in rows} == {"chat"}


def test_stats_and_json_views_agree(stub):
    stub.configure(tokens=4, token_delay=0.01)
    with OllamaClient(stub.url) as client:
        report = run_generation(client, GenerateRequest(model="stub-model", prompt="hi"),
                                usage=UsagePolicy(record=lambda row: None))
    doc = json.loads(json.dumps(generate_document(report)))
    assert doc["timings"]["eval_count"] == 4
    assert dict(stats_lines(report))["eval count"] == "4 token(s)"
    assert doc["ttft_s"] is not None and doc["ttft_s"] <= doc["wall_s"]


def test_ctrl_c_during_generate_exits_130_with_partial_text_and_an_interrupted_row(sollama, stub):
    from ollama_ops.edges.store import Store

    stub.configure(tokens=200, token_text="c", token_delay=0.02)
    finished = threading.Event()

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 10
        while stub.request_count == 0 and time.monotonic() < deadline and not finished.is_set():
            time.sleep(0.01)
        if not finished.wait(0.3):  # a few tokens are out by now; the stream needs 4 s more
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=press_ctrl_c)
    thread.start()
    try:
        result = sollama("--host", stub.host, "generate", "-m", "stub-model", "hi")
    finally:
        finished.set()
        thread.join()
    assert result.exit_code == 130, result.output
    assert 0 < len(result.stdout) < 200 and set(result.stdout) == {"c"}
    assert "interrupted" in result.stderr
    with Store() as store:
        assert [r.outcome for r in store.usage_rows()] == ["interrupted"]
