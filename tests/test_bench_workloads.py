"""`--dataset` (conversations, turns in order) and `--trace` (a timeline replayed) against the stub, and their
file formats (pure)."""

from __future__ import annotations

import json

import pytest

from ollama_ops.core.bench.workload import parse_dataset, parse_trace
from ollama_ops.edges.store import Store


def _bench(sollama, stub, *args: str):
    result = sollama("--host", stub.host, "bench", "-m", "stub-model", "--json", *args)
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def _conversation(name: str, turns: int) -> dict:
    messages = []
    for t in range(turns):
        messages.append({"role": "user", "content": f"{name} turn {t}"})
        messages.append({"role": "assistant", "content": f"answer {t}"})
    return {"messages": messages[:-1]}


def test_parse_dataset_turns() -> None:
    text = json.dumps(_conversation("a", 3)) + "\n\n" + json.dumps({"prompt": "single", "max_tokens": 4}) + "\n"
    conversations = parse_dataset(text, "d.jsonl")
    assert [len(c) for c in conversations] == [3, 1]
    assert [len(t.messages) for t in conversations[0]] == [1, 3, 5]
    assert conversations[0][2].messages[-1] == {"role": "user", "content": "a turn 2"}
    assert conversations[1][0].prompt == "single" and conversations[1][0].max_tokens == 4


@pytest.mark.parametrize(("text", "why"), [
    ("", "no entries"), ("[1]", "d:1: not a JSON object"), ('{"x": 1}', "d:1: needs"),
    ('{"messages": [{"role": "bot", "content": "x"}]}', "role"), ('{"messages": [{"role": "system", '
                                                                  '"content": "x"}]}', "no user message"),
    ('{"prompt": "x", "max_tokens": 0}', "max_tokens"), ('{"prompt": ""}', "non-empty"),
])
def test_parse_dataset_refuses(text: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_dataset(text, "d")
    assert why in str(info.value)


def test_parse_trace() -> None:
    lines = [{"timestamp": 100.0, "prompt_tokens": 10, "output_tokens": 2}, {"timestamp": 100.5, "prompt": "hi"},
             {"timestamp": 101, "messages": [{"role": "user", "content": "x"}], "output_tokens": 3}]
    entries = parse_trace("\n".join(json.dumps(x) for x in lines), "t")
    assert [e.offset for e in entries] == [0.0, 0.5, 1.0]
    assert entries[0].prompt_tokens == 10 and entries[1].item.prompt == "hi" and entries[2].output_tokens == 3


@pytest.mark.parametrize(("lines", "why"), [
    ([{"prompt": "x"}], "timestamp"), ([{"timestamp": "1", "prompt": "x"}], "timestamp"),
    ([{"timestamp": 2, "prompt": "x"}, {"timestamp": 1, "prompt": "x"}], "must not go back"),
    ([{"timestamp": 0, "prompt": "x", "prompt_tokens": 3}], "exactly one of"),
    ([{"timestamp": 0}], "exactly one of"), ([{"timestamp": 0, "prompt_tokens": -1}], "prompt_tokens"),
    ([{"timestamp": 0, "prompt": "x"}, {"timestamp": 1e9, "prompt": "x"}], "more than a week"),
])
def test_parse_trace_refuses(lines: list[dict], why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_trace("\n".join(json.dumps(x) for x in lines), "t")
    assert why in str(info.value) and "\n" not in str(info.value)


def test_conversations_keep_turn_order_and_run_in_parallel(sollama, stub, tmp_path) -> None:
    stub.configure(tokens=3, first_token_delay=0.005)
    data_file = tmp_path / "conv.jsonl"
    data_file.write_text("\n".join(json.dumps(_conversation(f"c{i}", 4)) for i in range(6)) + "\n")
    result, data = _bench(sollama, stub, "--dataset", str(data_file), "-c", "3", "--warmup", "0",
                          "--api", "chat")
    assert result.exit_code == 0, result.output
    assert data["summary"]["requests_ok"] == 24  # every turn of every conversation, once
    assert [t["turn"] for t in data["turns"]] == [1, 2, 3, 4] and all(t["n"] == 6 for t in data["turns"])
    seen: dict[str, list[int]] = {}
    order = []
    for _method, path, body in stub.requests:
        if path == "/api/chat":
            name = body["messages"][0]["content"].split()[0]
            seen.setdefault(name, []).append(len(body["messages"]))
            order.append(name)
    assert sorted(seen) == [f"c{i}" for i in range(6)]
    assert all(lengths == [1, 3, 5, 7] for lengths in seen.values())  # turns in order, each after the last
    assert len(set(order[:3])) == 3  # three conversations at once


def test_trace_replays_200_requests_in_order(sollama, stub, tmp_path) -> None:
    stub.configure(tokens=2, count_words=True)
    trace = tmp_path / "trace.jsonl"
    lines = [{"timestamp": 50 + i * 0.004, "prompt_tokens": 20 + i % 7, "output_tokens": 1 + i % 2}
             for i in range(200)]
    trace.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result, data = _bench(sollama, stub, "--trace", str(trace), "--speed", "2", "--warmup", "0",
                          "--api", "openai-completions")
    assert result.exit_code == 0, result.output
    s, lengths = data["summary"], data["lengths"]
    assert s["requests_ok"] == 200 and data["load"]["speed"] == 2 and data["load"]["prompts"] == "trace:trace.jsonl"
    assert data["send_lag"]["n"] == 200 and lengths["prompt_off_max"] == 0
    assert lengths["output_requested"]["mean"] == lengths["output_achieved"]["mean"] == 1.5
    sent = [len(b["prompt"].split()) + 5 for m, p, b in stub.requests if p == "/v1/completions"][3:]  # after probes
    assert sorted(sent) == sorted(20 + i % 7 for i in range(200))
    with Store() as store:
        rows = sorted(store.requests(data["run_id"]), key=lambda r: r.idx)
    assert [r.prompt_tokens for r in rows] == [20 + i % 7 for i in range(200)]  # request k is trace entry k


def test_workload_flags_are_checked(sollama, stub, tmp_path) -> None:
    good = tmp_path / "t.jsonl"
    good.write_text('{"timestamp": 0, "prompt": "x"}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "prompt": "x"}\n{"timestamp": -1, "prompt": "x"}\n')
    for args, why in (
        (["--trace", str(bad)], "bad.jsonl:2: timestamps must not go back"),
        (["--trace", str(good), "--rate", "2"], "exclude each other"),
        (["--trace", str(good), "-c", "2"], "--max-concurrency"),
        (["--speed", "2"], "add --trace"),
        (["--trace", str(good), "--speed", "0"], "--speed"),
        (["--dataset", str(tmp_path)], "not a regular file"),
        (["--dataset", str(good), "--trace", str(good)], "exclude each other"),
    ):
        result, _ = _bench(sollama, stub, *args)
        assert result.exit_code == 2, (args, result.output)
        assert why in result.stderr, (args, result.stderr)


def test_a_dataset_with_a_rate_starts_conversations_on_arrivals(sollama, stub, tmp_path) -> None:
    """Open loop over conversations: one starts at each arrival (here every 20 ms) whatever the others are doing,
    and within one the turns still go in order, each after the answer to the last."""
    stub.configure(tokens=2, first_token_delay=0.05)  # a conversation of 3 turns takes ≥ 150 ms
    data_file = tmp_path / "conv.jsonl"
    data_file.write_text("\n".join(json.dumps(_conversation(f"c{i}", 3)) for i in range(5)) + "\n")
    result, data = _bench(sollama, stub, "--dataset", str(data_file), "--rate", "50", "--arrival", "constant",
                          "--warmup", "0", "--api", "chat")
    assert result.exit_code == 0, result.output
    assert data["summary"]["requests_ok"] == 15 and data["load"]["rate"] == 50
    assert data["load"]["concurrency"] is None and data["send_lag"]["n"] == 5  # each conversation's first turn
    order = [(b["messages"][0]["content"].split()[0], len(b["messages"])) for m, p, b in stub.requests
             if p == "/api/chat"]
    for name in (f"c{i}" for i in range(5)):
        assert [n for c, n in order if c == name] == [1, 3, 5]
    assert order.index(("c1", 1)) < order.index(("c0", 5))  # c1 began before c0 ended: open loop
    with Store() as store:
        rows = store.requests(data["run_id"])
    assert sorted(r.turn for r in rows) == [1] * 5 + [2] * 5 + [3] * 5
    assert "rate=50/s constant" in sollama("report").stdout


def test_dataset_turns_are_stored_with_each_request(sollama, stub, tmp_path) -> None:
    stub.configure(tokens=2)
    data_file = tmp_path / "conv.jsonl"
    data_file.write_text(json.dumps(_conversation("a", 3)) + "\n" + json.dumps({"prompt": "single"}) + "\n")
    result, data = _bench(sollama, stub, "--dataset", str(data_file), "-c", "1", "--warmup", "0", "--api", "chat")
    assert result.exit_code == 0, result.output
    with Store() as store:
        rows = store.requests(data["run_id"])
    assert [r.turn for r in rows] == [1, 2, 3, 1]  # one worker: conversation a's turns, then the single prompt
