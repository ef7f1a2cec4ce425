"""The gateway's pure parts, without sockets: fair-queue order, request ids, keys and model patterns, the path
allow-list, limit arithmetic and token accounting, the error dialects."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ollama_ops.core.gateway import dialect
from ollama_ops.core.gateway.accounting import Verdict, retry_after, tightest, tokens_in
from ollama_ops.core.gateway.fairqueue import FairQueue
from ollama_ops.core.gateway.keys import (
    extract_key,
    hash_secret,
    matches_hash,
    model_allowed,
    new_secret,
    normalize_model,
    parse_expires,
    valid_name,
)
from ollama_ops.core.gateway.requestid import MAX_LEN, request_id, sanitize
from ollama_ops.core.gateway.routes import Kind, NotAllowed, body_models, match, wants_stream

# -- fair queue ----------------------------------------------------------------------------------------------------


def _serve_all(q: FairQueue) -> list:
    out = []
    while (item := q.pop()) is not None:
        out.append(item)
    return out


def test_a_flood_does_not_starve_a_newcomer():
    q: FairQueue[str] = FairQueue()
    for i in range(40):
        q.push("A", f"A{i}")
    q.push("B", "B0")
    order = _serve_all(q)
    assert order.index("B0") <= 1  # served within one A request, not after forty


def test_fifo_within_a_key_and_alternation_across_keys():
    q: FairQueue[str] = FairQueue()
    for i in range(3):
        q.push("A", f"A{i}")
    for i in range(3):
        q.push("B", f"B{i}")
    assert _serve_all(q) == ["A0", "B0", "A1", "B1", "A2", "B2"]


@pytest.mark.parametrize("weight, expected_a", [(1, 10), (2, 13), (3, 15)])
def test_priority_weights_the_share(weight, expected_a):
    q: FairQueue[str] = FairQueue()
    for i in range(20):
        q.push("A", f"A{i}", priority=weight)
        q.push("B", f"B{i}", priority=1)
    first20 = [_ for _ in (q.pop() for _ in range(20))]
    assert sum(1 for x in first20 if x.startswith("A")) == expected_a


def test_an_idle_key_cannot_bank_turns():
    q: FairQueue[str] = FairQueue()
    for i in range(10):  # A alone advances the virtual time
        q.push("A", f"A{i}")
    for _ in range(8):
        q.pop()
    for i in range(5):
        q.push("B", f"B{i}")
    rest = _serve_all(q)
    assert rest[:4] == ["A8", "B0", "A9", "B1"] or rest[:4] == ["B0", "A8", "B1", "A9"]


def test_remove_and_depth_and_clone():
    q: FairQueue[str] = FairQueue()
    q.push("A", "a1")
    q.push("A", "a2")
    q.push("B", "b1")
    assert q.remove("a1") and not q.remove("a1")
    assert q.depth_by_key() == {"A": 1, "B": 1} and len(q) == 2
    shadow = q.clone()
    assert _serve_all(shadow) == ["a2", "b1"]
    assert len(q) == 2 and "a2" in q
    assert sorted(q.drain()) == ["a2", "b1"] and len(q) == 0 and q.pop() is None
    with pytest.raises(ValueError):
        q.push("A", "x")
        q.push("B", "x")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABCD"), st.integers(1, 3)), min_size=1, max_size=60))
def test_every_item_served_once_and_fifo_per_key(pushes):
    q: FairQueue[tuple[str, int]] = FairQueue()
    for i, (key, prio) in enumerate(pushes):
        q.push(key, (key, i), priority=prio)
    order = _serve_all(q)
    assert sorted(order, key=lambda x: x[1]) == [(k, i) for i, (k, _) in enumerate(pushes)]
    for key in "ABCD":
        seq = [i for k, i in order if k == key]
        assert seq == sorted(seq)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 50), st.integers(1, 50))
def test_two_equal_keys_never_drift_apart_by_more_than_one(a, b):
    q: FairQueue[str] = FairQueue()
    for i in range(a):
        q.push("A", f"A{i}")
    for i in range(b):
        q.push("B", f"B{i}")
    served = {"A": 0, "B": 0}
    for item in _serve_all(q):
        served[item[0]] += 1
        if served["A"] < a and served["B"] < b:  # while both wait
            assert abs(served["A"] - served["B"]) <= 1


# -- request ids ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, kept", [
    ("abc-123", "abc-123"), ("  trace:1/2  ", "trace:1/2"), ("a" * MAX_LEN, "a" * MAX_LEN),
    ("a" * (MAX_LEN + 1), None), ("", None), ("bad\nline", None), ('x"y', None), ("ünï", None),
    (b"bytes-ok", "bytes-ok"), (b"\xff\xfe", None), (None, None),
])
def test_sanitize(raw, kept):
    assert sanitize(raw) == kept


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_request_id_is_always_safe_and_bounded(raw):
    rid = request_id(raw)
    assert 1 <= len(rid) <= MAX_LEN
    assert re.fullmatch(r"[A-Za-z0-9._:\-/+=@]+", rid)


# -- keys ------------------------------------------------------------------------------------------------------------

def test_secret_shape_and_hash():
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("sk-sollama-") and len(a) == len("sk-sollama-") + 43
    assert hash_secret(a) != a and len(hash_secret(a)) == 64
    assert matches_hash(a, hash_secret(a)) and not matches_hash(b, hash_secret(a))


@pytest.mark.parametrize("patterns, model, allowed", [
    ([], "anything:7b", True),
    (["smollm2"], "smollm2:135m", True),
    (["smollm2"], "smollm2", True),
    (["smollm2:135m"], "smollm2:360m", False),
    (["smollm2:135m"], "smollm2:135m", True),
    (["llama3*"], "llama3.1:8b", True),
    (["llama3*"], "qwen2:7b", False),
    (["*:7b"], "qwen2:7b", True),
    (["*:7b"], "qwen2", False),
    (["stub-model"], "stub-model", True),
    (["x", "y*"], "yolo:1", True),
    (["library/smollm2"], "smollm2:135m", False),
])
def test_model_patterns(patterns, model, allowed):
    assert model_allowed(patterns, model) is allowed


@pytest.mark.parametrize("name, full", [("a", "a:latest"), ("a:1", "a:1"), ("reg:5000/ns/m", "reg:5000/ns/m:latest")])
def test_normalize_model(name, full):
    assert normalize_model(name) == full


@pytest.mark.parametrize("auth, xkey, found", [
    ("Bearer abc", None, "abc"), ("bearer  abc ", None, "abc"), ("Basic abc", None, None),
    ("Bearer ", "k2", "k2"), (None, " k3 ", "k3"), ("Bearer a", "b", "a"), (None, None, None), ("", "", None),
])
def test_extract_key(auth, xkey, found):
    assert extract_key(auth, xkey) == found


@pytest.mark.parametrize("text, seconds", [("30d", 30 * 86400), ("12h", 43200), ("2w", 14 * 86400),
                                           ("90m", 5400), ("45s", 45), (" 7D ", 7 * 86400)])
def test_parse_expires(text, seconds):
    assert parse_expires(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "30", "d", "-1d", "1y", "1.5d", "30 days"])
def test_parse_expires_rejects(text):
    with pytest.raises(ValueError, match="expiry"):
        parse_expires(text)


@pytest.mark.parametrize("name, ok", [("ci", True), ("team.a_b-1", True), ("", False), ("-x", False),
                                      ("a b", False), ("x" * 65, False), ("ü", False)])
def test_valid_name(name, ok):
    assert valid_name(name) is ok


# -- the path allow-list ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, route, kind", [
    ("POST", "/api/generate", "/api/generate", Kind.INFER),
    ("POST", "/api/chat", "/api/chat", Kind.INFER),
    ("POST", "/api/embed", "/api/embed", Kind.INFER),
    ("GET", "/api/tags", "/api/tags", Kind.LIST),
    ("DELETE", "/api/delete", "/api/delete", Kind.ADMIN),
    ("POST", "/api/blobs/sha256:" + "a" * 64, "/api/blobs/{digest}", Kind.ADMIN),
    ("HEAD", "/api/blobs/sha256-" + "0" * 64, "/api/blobs/{digest}", Kind.ADMIN),
    ("POST", "/v1/chat/completions", "/v1/chat/completions", Kind.INFER),
    ("GET", "/v1/models", "/v1/models", Kind.LIST),
    ("GET", "/v1/models/smollm2:135m", "/v1/models/{model}", Kind.META),
])
def test_allowed_paths(method, path, route, kind):
    found = match(method, path, path.encode())
    assert found.route.path == route and found.route.kind is kind and found.path == path


@pytest.mark.parametrize("method, path, raw, status", [
    ("GET", "/api/generate", None, 405),
    ("POST", "/api/tags", None, 405),
    ("POST", "/api/nope", None, 404),
    ("GET", "/api/../etc/passwd", None, 404),
    ("POST", "/api//generate", None, 404),
    ("POST", "/api/generate", b"/api/%67enerate", 404),
    ("POST", "/api/generate", b"http://evil/api/generate", 404),
    ("POST", "/api/blobs/sha256:xyz", None, 404),
    ("POST", "/api/blobs/sha256:" + "a" * 63, None, 404),
    ("GET", "/v1/models/../../x", None, 404),
    ("GET", "/v1/models/.hidden", None, 404),
    ("POST", "/v1/models", None, 405),
    ("GET", "/", None, 404),
])
def test_refused_paths(method, path, raw, status):
    with pytest.raises(NotAllowed) as err:
        match(method, path, raw)
    assert err.value.status == status


def test_body_models_and_stream_default():
    chat = match("POST", "/api/chat").route
    copy = match("POST", "/api/copy").route
    v1 = match("POST", "/v1/chat/completions").route
    assert body_models(chat, {"model": "m", "x": 1}) == ["m"]
    assert body_models(copy, {"source": "a", "destination": "b"}) == ["a", "b"]
    assert body_models(chat, {"model": 3}) == [] and body_models(chat, [1]) is None
    assert wants_stream(chat, {}) and not wants_stream(chat, {"stream": False})
    assert not wants_stream(v1, {}) and wants_stream(v1, {"stream": True})


# -- limits arithmetic and tokens ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, after", [(0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (59.5, 60), (float("inf"), 1)])
def test_retry_after(seconds, after):
    assert retry_after(seconds) == after


def test_verdict_headers():
    ok = Verdict(True, "rpm", 10, 7, 12.3)
    assert ok.headers() == {"RateLimit-Limit": "10", "RateLimit-Remaining": "7", "RateLimit-Reset": "13"}
    no = Verdict(False, "tpm", 100, -5, 30.2)
    assert no.headers()["Retry-After"] == "31" and no.headers()["RateLimit-Remaining"] == "0"
    assert "100 tokens per minute" in no.message()
    assert tightest([ok, Verdict(True, "tpm", 100, 10, 5)]).name == "tpm"
    assert tightest([ok, no]) is no and tightest([]) is None


def test_tokens_from_ndjson_json_and_sse():
    final = {"done": True, "prompt_eval_count": 12, "eval_count": 34}
    assert tokens_in(b'{"response":"a"}\n' + json.dumps(final).encode() + b"\n") == (12, 34)
    assert tokens_in(json.dumps({"embeddings": [[0.1]], "prompt_eval_count": 5}).encode()) == (5, 0)
    usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16}}
    assert tokens_in(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n") == (7, 9)
    assert tokens_in(b"data: {}\n\ndata: [DONE]\n\n", sse_events=6) == (0, 6)
    # a model's text cannot forge the counts: its quotes arrive escaped
    forged = json.dumps({"response": '"eval_count": 999'}).encode()
    assert tokens_in(forged) == (0, 0)


# -- dialects --------------------------------------------------------------------------------------------------------

def test_error_dialects():
    assert json.loads(dialect.error_body("api", 503, dialect.BUSY)) == {"error": dialect.BUSY}
    v1 = json.loads(dialect.error_body("v1", 429, "slow down"))["error"]
    assert v1 == {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}
    assert dialect.stream_error("api", "boom", sse=False) == b'{"error": "boom"}\n'
    event = dialect.stream_error("v1", "boom", sse=True)
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert json.loads(event[6:])["error"]["message"] == "boom"


@pytest.mark.parametrize("block, ok", [(b'{"a":1}\n{"b":2}\n', True), (b"\n", True), (b"{not json\n", False),
                                       (b'{"a":1}\nplain\n', False), (b'  {"a":1}  \n', True)])
def test_ndjson_check(block, ok):
    assert dialect.ndjson_ok(block) is ok
