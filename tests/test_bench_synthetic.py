"""Synthetic workload math, OpenAI bodies, header validation and the length check (pure)."""

from __future__ import annotations

import random

import pytest

from ollama_ops.core.bench.apis import openai_body, parse_headers
from ollama_ops.core.bench.lengths import LengthCheck, length_warnings
from ollama_ops.core.bench.synthetic import (
    WORDS,
    LengthSpec,
    TokenFit,
    correct_words,
    fit_tokens,
    parse_length,
    sample_lengths,
    word_text,
)


@pytest.mark.parametrize(("text", "spec"), [
    ("512", LengthSpec(512)), ("128:32", LengthSpec(128, 32.0)), ("128:0.5:64:256", LengthSpec(128, 0.5, 64, 256)),
])
def test_parse_length(text: str, spec: LengthSpec) -> None:
    assert parse_length(text, "--prompt-tokens") == spec


@pytest.mark.parametrize(("text", "why"), [
    ("0", "between 1"), ("-3", "between 1"), ("abc", "whole numbers"), ("1:2:3", "N:STDDEV:MIN:MAX"),
    ("10:nan", "standard deviation"), ("10:-1", "standard deviation"), ("10:1:20:30", "MIN ≤ N ≤ MAX"),
    ("2000000", "between 1"), ("", "whole numbers"),
])
def test_parse_length_refuses(text: str, why: str) -> None:
    with pytest.raises(ValueError, match="--prompt-tokens") as info:
        parse_length(text, "--prompt-tokens")
    assert why in str(info.value)


def test_samples_are_seeded_and_clipped() -> None:
    spec = LengthSpec(100, 50.0, 80, 120)
    a = sample_lengths(spec, 500, random.Random(7))
    assert a == sample_lengths(spec, 500, random.Random(7))
    assert a != sample_lengths(spec, 500, random.Random(8))
    assert min(a) == 80 and max(a) == 120  # sd 50 around 100 hits both clips in 500 draws
    assert sample_lengths(LengthSpec(64), 3, random.Random(0)) == [64, 64, 64]


def test_word_text_is_seeded_and_starts_the_same() -> None:
    text = word_text(50, random.Random("0:1"))
    assert text == word_text(50, random.Random("0:1")) and text.split()[0] == "the"
    assert len(text.split()) == 50 and set(text.split()) <= set(WORDS)
    assert word_text(0, random.Random(1)) == ""


def test_fit_exact_and_inexact() -> None:
    fit = fit_tokens([(8, 17), (512, 521)])
    assert fit == TokenFit(9.0, 1.0) and fit.exact and fit.words_for(64) == 55 and fit.tokens(55) == 64
    rough = fit_tokens([(8, 20), (100, 135), (50, 80)])
    assert not rough.exact and 1.2 < rough.per_word < 1.3
    with pytest.raises(ValueError):
        fit_tokens([(8, 10), (8, 11)])
    with pytest.raises(ValueError):
        fit_tokens([(8, 10), (16, 10)])


def test_correct_words_steps_toward_the_target() -> None:
    fit = TokenFit(5.0, 1.25)
    assert correct_words(40, 60, 55, fit) == 44
    assert correct_words(40, 60, 61, fit) == 39  # at least one word
    assert correct_words(40, 60, 60, fit) == 40


def test_openai_bodies() -> None:
    chat = openai_body(model="m", api="openai-chat", prompt="hi", messages=None, max_tokens=8,
                       options={"temperature": 0, "seed": 3})
    assert chat == {"model": "m", "stream": True, "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "temperature": 0, "seed": 3}
    comp = openai_body(model="m", api="openai-completions", prompt="hi", messages=None, max_tokens=None,
                       options={"num_predict": 5})
    assert comp["prompt"] == "hi" and comp["max_tokens"] == 5 and "max_completion_tokens" not in comp
    with pytest.raises(ValueError, match="num_ctx"):
        openai_body(model="m", api="openai-chat", prompt="x", messages=None, max_tokens=1, options={"num_ctx": 9})
    with pytest.raises(ValueError, match="openai-chat"):
        openai_body(model="m", api="openai-completions", prompt=None, messages=[{"role": "user"}], max_tokens=1)


def test_headers() -> None:
    assert parse_headers(["X-Team: blue", "X-Env:prod "], "k1") == {"X-Team": "blue", "X-Env": "prod",
                                                                    "Authorization": "Bearer k1"}
    assert parse_headers(None) == {}


@pytest.mark.parametrize(("pairs", "key", "why"), [
    (["novalue"], None, "NAME:VALUE"), ([": x"], None, "NAME:VALUE"), (["Bad Name: x"], None, "valid HTTP header"),
    (["X-A: a\r\nX-B: b"], None, "printable ASCII"), (["X-A: \x1b[31m"], None, "printable ASCII"),
    (["Host: evil"], None, "sets this header itself"), (["Content-Length: 1"], None, "sets this header itself"),
    (["X-A: 1", "x-a: 2"], None, "twice"), (["Authorization: Bearer a"], "b", "exclude each other"),
    ([], "has space", "--api-key"), ([], "", "--api-key"),
])
def test_headers_refused(pairs: list[str], key: str | None, why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_headers(pairs, key)
    assert why in str(info.value) and "\n" not in str(info.value)


def test_length_check_counts_overruns_and_early_stops() -> None:
    check = LengthCheck()
    for asked, got in ((16, 16), (16, 20), (16, 9), (16, 16)):
        check.add(asked, got, 64, 63)
    check.add(None, 5, None, 12)  # nothing asked: nothing to check
    r = check.result()
    assert (r.output_checked, r.output_overran, r.output_early) == (4, 1, 1)
    assert r.output_requested.mean == 16 and r.output_achieved.mean == pytest.approx(61 / 4)
    assert r.prompt_requested.n == 4 and r.prompt_achieved.mean == 63 and r.prompt_off_max == 1
    warnings = length_warnings(r, "openai-chat")
    assert len(warnings) == 2 and "1 of 4 answers overran" in warnings[0] and "openai-chat" in warnings[0]
    assert "1 of 4 answers stopped before" in warnings[1]


def test_describe_load_names_the_workload() -> None:
    from ollama_ops.core.bench.load import describe_load

    assert describe_load({"concurrency": 2, "requests": 10, "prompt_tokens": "64:8", "prefix_tokens": 16,
                          "output_tokens": "32"}) == "c=2 n=10 prompt_tokens=64:8+16 output_tokens=32"
    # a trace replays on its own timeline: stored without a concurrency, described as a replay (older runs stored
    # concurrency 1 for it, which must not read as c=1 either)
    for stored in ({"concurrency": None}, {"concurrency": 1}):
        load = stored | {"prompts": "trace:t.jsonl", "speed": 2.0, "requests": 200}
        assert describe_load(load) == "trace replay t.jsonl x2 n=200"
    assert describe_load({"rate": 2.0, "arrival": "poisson", "prompts": "dataset:d.jsonl", "requests": 9}) == \
        "rate=2/s poisson n=9 dataset:d.jsonl"
    assert describe_load({"concurrency": 4, "prompts": "dataset:d.jsonl"}) == "c=4 dataset:d.jsonl"
