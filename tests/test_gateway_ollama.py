"""The gateway in front of the real Ollama daemon (SmolLM2), driven by clients nobody here wrote: the official
`ollama` Python package and the `openai` SDK, streaming and not; and an abandoned stream that frees the slot."""

from __future__ import annotations

import json
import socket

import pytest

from tests.gateway_helpers import gateway, make_key
from tests.lifecycle_helpers import wait_for

ollama_pkg = pytest.importorskip("ollama")
openai_pkg = pytest.importorskip("openai")

OPTS = {"num_predict": 8, "temperature": 0, "seed": 1}


@pytest.fixture(scope="module")
def real_gw(ollama_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("gw-real")
    user = make_key(home, "app", "--models", "smollm2*")
    admin = make_key(home, "ops", "--admin")
    with gateway(ollama_server.url, home, "--slots", "1") as gw:
        gw.user, gw.admin = user, admin  # type: ignore[attr-defined]
        yield gw


def _client(gw, key=None):
    return ollama_pkg.Client(host=gw.url, headers={"Authorization": f"Bearer {key or gw.user}"}, timeout=120)


def _openai(gw, key=None):
    return openai_pkg.OpenAI(base_url=gw.url + "/v1", api_key=key or gw.user, timeout=120, max_retries=0)


def test_ollama_package_generate_chat_embed(ollama, real_gw):
    client = _client(real_gw)
    out = client.generate(model=ollama.model, prompt="Say hi", options=OPTS)
    assert out.done and out.eval_count and out.eval_count <= 8 and out.response
    parts = list(client.generate(model=ollama.model, prompt="Count to five", options=OPTS, stream=True))
    assert parts[-1].done and len(parts) >= 2 and "".join(p.response for p in parts)
    chat = client.chat(model=ollama.model, messages=[{"role": "user", "content": "Hello"}], options=OPTS)
    assert chat.message.role == "assistant" and chat.message.content
    streamed = list(client.chat(model=ollama.model, messages=[{"role": "user", "content": "Hi"}], options=OPTS,
                                stream=True))
    assert streamed[-1].done and "".join(p.message.content for p in streamed)
    emb = client.embed(model=ollama.model, input=["one", "two"])
    assert len(emb.embeddings) == 2 and len(emb.embeddings[0]) > 10
    names = [m.model for m in client.list().models]
    assert ollama.model in names and all(n.startswith("smollm2") for n in names)


def test_ollama_package_sees_401_and_403(ollama, real_gw):
    with pytest.raises(ollama_pkg.ResponseError) as err:
        _client(real_gw, "sk-sollama-nope").generate(model=ollama.model, prompt="x", options=OPTS)
    assert err.value.status_code == 401 and err.value.error == "invalid or missing API key"
    with pytest.raises(ollama_pkg.ResponseError) as err:
        _client(real_gw).generate(model="llama3", prompt="x")
    assert err.value.status_code == 403 and "may not use model 'llama3'" in err.value.error
    with pytest.raises(ollama_pkg.ResponseError) as err:
        _client(real_gw).pull("smollm2:135m")
    assert err.value.status_code == 403


def test_openai_sdk_chat_completions_embeddings_models(ollama, real_gw):
    client = _openai(real_gw)
    done = client.chat.completions.create(model=ollama.model, messages=[{"role": "user", "content": "Hello"}],
                                          max_tokens=8, temperature=0)
    assert done.choices[0].message.content and done.usage.completion_tokens <= 8 and done.usage.prompt_tokens > 0
    chunks = list(client.chat.completions.create(model=ollama.model, max_tokens=8, stream=True,
                                                 messages=[{"role": "user", "content": "Hi"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    comp = client.completions.create(model=ollama.model, prompt="Once upon a time", max_tokens=8)
    assert comp.choices[0].text
    emb = client.embeddings.create(model=ollama.model, input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) > 10
    assert [m.id for m in client.models.list().data] == [ollama.model]
    with pytest.raises(openai_pkg.AuthenticationError):
        _openai(real_gw, "sk-sollama-nope").models.list()
    with pytest.raises(openai_pkg.PermissionDeniedError):
        client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "x"}])


def test_tokens_reach_the_access_log_and_usage(ollama, real_gw):
    out = _client(real_gw).generate(model=ollama.model, prompt="Name a colour", options=OPTS)
    def matching() -> list[dict]:
        return [e for e in real_gw.access_log() if e["route"] == "/api/generate"
                and e["output_tokens"] == out.eval_count and e["prompt_tokens"] == out.prompt_eval_count]

    assert wait_for(lambda: bool(matching()), 10), real_gw.access_log()[-3:]
    assert matching()[-1]["key"] == "app" and matching()[-1]["status"] == 200


def test_an_abandoned_stream_frees_the_slot(ollama, real_gw):
    """With one gateway slot and one Ollama slot, a long stream is abandoned after its first chunk; the next
    request is served at once, not after the abandoned one's 2,000 tokens: its own server-side total time is far
    below what 2,000 tokens take at its own measured per-token speed."""
    body = json.dumps({"model": ollama.model, "prompt": "Write a very long story about the sea.",
                       "options": {"num_predict": 2000, "temperature": 0.8}}).encode()
    sock = socket.create_connection(("127.0.0.1", real_gw.port))
    sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: "
                 b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (real_gw.user.encode(), len(body), body))
    seen = b""
    while b'"response"' not in seen:  # the first token arrived
        chunk = sock.recv(65536)
        assert chunk, seen
        seen += chunk
    sock.close()
    out = _client(real_gw).generate(model=ollama.model, prompt="Say yes", options=OPTS)
    per_token_ns = out.eval_duration / max(1, out.eval_count)
    assert out.total_duration < 0.25 * 2000 * per_token_ns, (out.total_duration, per_token_ns)
    abandoned = [e for e in real_gw.access_log() if e["status"] == 499 and e["route"] == "/api/generate"]
    assert abandoned and abandoned[-1]["error"] == "client disconnected"
