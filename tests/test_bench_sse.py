"""The OpenAI SSE decoder (pure): text events clocked, the server's usage taken, faults with their kinds."""

from __future__ import annotations

import json

import pytest

from ollama_ops.core.bench.sse import SseDecoder, StreamError


def _chat(content: str, finish: str | None = None) -> bytes:
    obj = {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": finish}]}
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _completion(text: str, finish: str | None = None) -> bytes:
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}  # Ollama puts this on every chunk
    obj = {"id": "c", "object": "text_completion", "choices": [{"text": text, "index": 0, "finish_reason": finish}],
           "usage": zero}
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":15,"completion_tokens":3,"total_tokens":18}}\n\n'
DONE = b"data: [DONE]\n\n"
CHAT = _chat("The") + _chat(" number") + _chat("") + _chat(' "quoted\\"') + _chat("", "length") + USAGE + DONE
COMPLETION = _completion("The") + _completion(" a") + _completion("b") + _completion("", "stop") + USAGE + DONE


@pytest.mark.parametrize("stream", [CHAT, COMPLETION], ids=["chat", "completions"])
@pytest.mark.parametrize("step", [1, 2, 7, 64, 10_000])
def test_split_anywhere_gives_the_same_answer(stream: bytes, step: int) -> None:
    decoder, times, final = SseDecoder(), [], None
    for k, i in enumerate(range(0, len(stream), step)):
        got = decoder.feed(stream[i:i + step], float(k), times)
        final = final or got
    assert final == {"done": True, "done_reason": "length" if stream is CHAT else "stop", "eval_count": 3,
                     "prompt_eval_count": 15}
    assert len(times) == 3  # text events only: the empty-content ones are not chunks of text
    assert times == sorted(times)


def test_the_time_is_that_of_the_bytes_completing_the_event() -> None:
    decoder, times = SseDecoder(), []
    event = _chat("x")
    decoder.feed(event[:-1], 1.0, times)
    assert times == []
    decoder.feed(event[-1:], 2.0, times)
    assert times == [2.0]


def test_crlf_comments_and_multiline_data() -> None:
    decoder, times = SseDecoder(), []
    stream = (b": keep-alive\r\nevent: message\r\nid: 1\r\n" + _chat("a").replace(b"\n", b"\r\n")
              + b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"b"},"finish_reason":"stop"}]}\n\n'
              + DONE)
    final = decoder.feed(stream, 0.5, times)
    assert final == {"done": True, "done_reason": "stop"}  # no usage asked: no counts
    assert times == [0.5, 0.5]


def test_a_cut_stream_is_incomplete() -> None:
    decoder, times = SseDecoder(), []
    cut = CHAT[:len(CHAT) // 2]
    assert decoder.feed(cut, 1.0, times) is None
    assert decoder.end(2.0, times) is None  # no [DONE], no finish reason: the caller reports a disconnect
    assert len(times) >= 1  # what arrived is kept


def test_finish_without_done_is_complete_at_the_end_of_the_body() -> None:
    decoder, times = SseDecoder(), []
    assert decoder.feed(_chat("a") + _chat("", "stop") + USAGE, 1.0, times) is None
    assert decoder.end(1.0, times) == {"done": True, "done_reason": "stop", "eval_count": 3, "prompt_eval_count": 15}


def test_bytes_after_done_are_ignored() -> None:
    decoder, times = SseDecoder(), []
    assert decoder.feed(_chat("a") + DONE + b"garbage\n\n", 1.0, times) is not None
    assert times == [1.0]


@pytest.mark.parametrize(("stream", "kind", "text"), [
    (b"data: {not json\n\n", "malformed", "malformed event"),
    (b"data: [1, 2]\n\n", "malformed", "malformed event"),
    (b'{"model":"m","response":"x","done":false}\n', "malformed", "not a server-sent event"),
    (b'data: {"error":{"message":"boom","type":"api_error"}}\n\n', "server_error", "server error: boom"),
    (b'data: {"error":"plain"}\n\n', "server_error", "server error: plain"),
])
def test_faults_have_their_kinds(stream: bytes, kind: str, text: str) -> None:
    decoder = SseDecoder()
    with pytest.raises(StreamError) as info:
        decoder.feed(_chat("a") + stream, 1.0, [])
    assert info.value.kind == kind and text in str(info.value)


def test_the_last_nonzero_usage_counts() -> None:
    decoder, times = SseDecoder(), []
    final = decoder.feed(_completion("a") + _completion("", "stop") + USAGE + _completion("") + DONE, 1.0, times)
    assert final is not None and final["eval_count"] == 3 and final["prompt_eval_count"] == 15


def test_reasoning_counts_as_text() -> None:
    decoder, times = SseDecoder(), []
    event = b'data: {"choices":[{"index":0,"delta":{"reasoning":"hmm"},"finish_reason":null}]}\n\n'
    decoder.feed(event + DONE, 3.0, times)
    assert times == [3.0]
