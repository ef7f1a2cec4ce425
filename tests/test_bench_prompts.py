"""Bench prompts: built-in sets, prompt files, and the seeded request plan."""

from __future__ import annotations

import json

import pytest

from ollama_ops.core.bench.prompts import (
    BUILTIN_SETS,
    PromptItem,
    builtin_prompts,
    parse_prompt_file,
    plan_payloads,
    request_body,
)


@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_builtin_sets_have_a_few_dozen_distinct_prompts(name: str) -> None:
    items = builtin_prompts(name)
    assert len(items) >= 24
    assert len({i.prompt for i in items}) == len(items)


def test_builtin_sets_grow_in_length() -> None:
    mean = {name: sum(len(i.prompt or "") for i in builtin_prompts(name)) / len(builtin_prompts(name))
            for name in BUILTIN_SETS}
    assert mean["short"] < mean["medium"] < mean["long"]


def test_unknown_set() -> None:
    with pytest.raises(ValueError, match="built-in sets"):
        builtin_prompts("huge")


def test_text_lines() -> None:
    items = parse_prompt_file("first prompt\n\n  second\r\n", "p.txt")
    assert items == [PromptItem(prompt="first prompt"), PromptItem(prompt="  second")]


def test_jsonl_prompts_and_messages() -> None:
    text = '{"prompt": "hi"}\n{"messages": [{"role": "user", "content": "yo"}]}\n'
    items = parse_prompt_file(text, "p.jsonl")
    assert items[0] == PromptItem(prompt="hi")
    assert items[1].messages == ({"role": "user", "content": "yo"},)


@pytest.mark.parametrize(("text", "needle"), [
    ('{"prompt": "ok"}\n{bad\n', "p.jsonl:2: not a JSON object"),
    ('{"text": "x"}\n', "p.jsonl:1: needs"),
    ("\n\n", "no prompts"),
])
def test_bad_files(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_prompt_file(text, "p.jsonl")


def test_request_bodies() -> None:
    body = request_body(PromptItem(prompt="hi"), model="m", api="generate", max_tokens=8, options={"seed": 1})
    assert body == {"model": "m", "stream": True, "prompt": "hi", "options": {"seed": 1, "num_predict": 8}}
    chat = request_body(PromptItem(prompt="hi"), model="m", api="chat", max_tokens=None)
    assert chat["messages"] == [{"role": "user", "content": "hi"}] and "options" not in chat
    with pytest.raises(ValueError, match="--api chat"):
        request_body(PromptItem(messages=({"role": "user", "content": "x"},)), model="m", api="generate",
                     max_tokens=None)


def test_plan_is_fixed_by_the_seed() -> None:
    items = builtin_prompts("short")
    a = plan_payloads(items, model="m", api="generate", max_tokens=4, seed=3)
    b = plan_payloads(items, model="m", api="generate", max_tokens=4, seed=3)
    c = plan_payloads(items, model="m", api="generate", max_tokens=4, seed=4)
    first = [a.body(i) for i in range(40)]
    assert first == [b.body(i) for i in range(40)]
    assert first != [c.body(i) for i in range(40)]
    assert a.body(5) == first[5]  # asking again gives the same body
    assert len({json.loads(x)["prompt"] for x in first}) > 10
