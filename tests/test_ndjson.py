"""Ollama's NDJSON stream lines → typed events (pure core): tables and properties."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.core.ndjson import FinalChunk, TextChunk, Timings, chunk_text, parse_event, parse_line, to_event
from ollama_ops.errors import MalformedResponse, ServerError

FINAL = {"model": "m", "created_at": "2025-01-01T00:00:00Z", "response": "", "done": True, "done_reason": "stop",
         "context": [1, 2], "total_duration": 2_500_000_000, "load_duration": 500_000_000,
         "prompt_eval_count": 10, "prompt_eval_duration": 250_000_000, "eval_count": 40,
         "eval_duration": 1_600_000_000}


def test_text_chunk_from_generate_and_chat():
    assert parse_event(b'{"model":"m","response":"Hel","done":false}\n') == TextChunk("Hel")
    chat = {"model": "m", "message": {"role": "assistant", "content": "lo", "thinking": "hmm"}, "done": False}
    assert to_event(chat) == TextChunk("lo", thinking="hmm")
    assert to_event({"response": "", "thinking": "t", "done": False}) == TextChunk("", thinking="t")


def test_final_chunk_converts_nanoseconds_to_seconds():
    event = parse_event(json.dumps(FINAL))
    assert isinstance(event, FinalChunk)
    assert event.done_reason == "stop"
    t = event.timings
    assert (t.total, t.load, t.prompt_eval, t.eval) == pytest.approx((2.5, 0.5, 0.25, 1.6))
    assert (t.prompt_eval_count, t.eval_count) == (10, 40)
    assert t.eval_rate == pytest.approx(25.0)
    assert t.prompt_eval_rate == pytest.approx(40.0)
    assert event.extra == {"model": "m", "created_at": "2025-01-01T00:00:00Z", "context": [1, 2]}


def test_final_chat_chunk_keeps_its_text():
    event = to_event({"message": {"role": "assistant", "content": "!"}, "done": True, "done_reason": "length"})
    assert isinstance(event, FinalChunk)
    assert (event.text, event.done_reason) == ("!", "length")


@pytest.mark.parametrize("missing", ["total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                                     "eval_count", "eval_duration"])
def test_each_missing_metric_is_zero(missing):
    obj = {k: v for k, v in FINAL.items() if k != missing}
    timings = to_event(obj).timings  # type: ignore[union-attr]
    field = {"total_duration": "total", "load_duration": "load", "prompt_eval_duration": "prompt_eval",
             "eval_duration": "eval"}.get(missing, missing)
    assert getattr(timings, field) == 0


def test_no_metrics_at_all_and_rates_stay_zero():
    event = to_event({"response": "", "done": True})
    assert isinstance(event, FinalChunk)
    assert event.timings == Timings()
    assert event.timings.eval_rate == 0.0 and event.timings.prompt_eval_rate == 0.0
    assert not event.timings.has_eval_count
    assert event.done_reason == ""


@pytest.mark.parametrize("bad", ["12", None, [1], {"n": 1}, True, 1e400, -1])
def test_odd_metric_values_never_crash(bad):
    obj = dict(FINAL, eval_count=bad, eval_duration=bad)
    timings = to_event(obj).timings  # type: ignore[union-attr]
    assert math.isfinite(timings.eval) and isinstance(timings.eval_count, int)


def test_huge_integers_from_the_server_do_not_crash():
    line = '{"done":true,"eval_count":1' + "0" * 400 + ',"eval_duration":1' + "0" * 400 + "}"
    timings = parse_event(line).timings  # type: ignore[union-attr]
    assert math.isfinite(timings.eval)


def test_error_line_raises_server_error():
    with pytest.raises(ServerError) as info:
        parse_event(b'{"error":"an error was encountered while running the model: GGML_ASSERT"}')
    assert info.value.message == "server error: an error was encountered while running the model: GGML_ASSERT"
    assert info.value.exit_code == 1


@pytest.mark.parametrize("line, shown", [
    (b"{not json", "'{not json'"),
    (b"[1, 2]", "'[1, 2]'"),
    (b'"just a string"', "'\"just a string\"'"),
    (b"42\n", "'42'"),
    (b"\xff\xfe{", "'\ufffd\ufffd{'"),
    (b"", "''"),
])
def test_malformed_line_names_the_bytes(line, shown):
    with pytest.raises(MalformedResponse) as info:
        parse_line(line)
    assert info.value.message == f"malformed line in the server's stream: {shown}"


def test_malformed_long_line_is_truncated():
    with pytest.raises(MalformedResponse) as info:
        parse_line("x" * 500)
    assert info.value.message.endswith("'" + "x" * 77 + "...'")
    assert len(info.value.message) < 140


def test_deeply_nested_line_is_malformed_not_a_crash():
    with pytest.raises(MalformedResponse):
        parse_line("[" * 100_000 + "]" * 100_000)


def test_chunk_text_prefers_the_chat_message():
    assert chunk_text({"message": {"content": None}, "response": "x"}) == ("", "")
    assert chunk_text({"response": 5}) == ("5", "")


# -- properties -----------------------------------------------------------------------------------------------------

ns = st.integers(0, 10**15)


@given(ns, ns, ns, ns, st.integers(0, 10**7), st.integers(0, 10**7))
def test_timings_are_nanoseconds_times_1e9(total, load, prompt, evald, pcount, ecount):
    obj = {"done": True, "total_duration": total, "load_duration": load, "prompt_eval_duration": prompt,
           "eval_duration": evald, "prompt_eval_count": pcount, "eval_count": ecount}
    t = parse_event(json.dumps(obj)).timings  # type: ignore[union-attr]
    assert (t.total, t.load, t.prompt_eval, t.eval) == pytest.approx((total / 1e9, load / 1e9, prompt / 1e9,
                                                                      evald / 1e9))
    assert (t.prompt_eval_count, t.eval_count) == (pcount, ecount)
    assert t.eval_rate == (pytest.approx(ecount / t.eval) if evald else 0.0)


@given(st.text(max_size=40))
def test_any_text_round_trips_through_a_chunk(text):
    line = json.dumps({"model": "m", "response": text, "done": False})
    assert parse_event(line) == TextChunk(text)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                           max_leaves=10)
chunk_keys = st.sampled_from(["response", "message", "thinking", "done", "done_reason", "total_duration",
                              "load_duration", "eval_count", "eval_duration", "prompt_eval_count", "model"])


@given(st.dictionaries(st.one_of(chunk_keys, st.text(max_size=6)), json_values, max_size=6))
def test_any_object_is_an_event_or_a_server_error(obj):
    try:
        event = to_event(obj)
    except ServerError:
        assert "error" in obj
        return
    assert "error" not in obj
    assert isinstance(event, FinalChunk if obj.get("done") else TextChunk)
    assert isinstance(event.text, str)
    if isinstance(event, FinalChunk):
        t = event.timings
        assert all(math.isfinite(v) for v in (t.total, t.load, t.prompt_eval, t.eval))


@given(st.binary(max_size=60))
def test_any_bytes_parse_to_a_dict_or_malformed(raw):
    try:
        obj = parse_line(raw)
    except MalformedResponse as exc:
        assert "\n" not in exc.one_line()
        return
    assert isinstance(obj, dict)
