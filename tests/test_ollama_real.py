"""The client against the real Ollama daemon serving SmolLM2 (issue: real parts)."""

from __future__ import annotations

import time

import pytest

from ollama_ops.client.protocol import GenerateRequest
from ollama_ops.client.sync import OllamaClient
from ollama_ops.core.ndjson import FinalChunk, TextChunk
from ollama_ops.errors import ModelNotFound

pytestmark = pytest.mark.ollama


@pytest.fixture
def client(ollama):
    with OllamaClient(ollama.url, read_timeout=120) as c:
        yield c


def test_version_is_the_pinned_build(client, ollama):
    from tests.conftest import TOOLS

    version = client.version()
    if ollama.binary.startswith(str(TOOLS)):  # our build reports its pinned version
        assert version == "0.23.2"
    else:  # an ollama found on PATH: a release version string
        assert version and version[0].isdigit()


def test_ping_answers_ollama_is_running(client):
    assert client.ping() < 5


def test_tags_list_the_imported_model(client, ollama):
    names = [m["name"] for m in client.tags()]
    assert ollama.model in names


def test_show_reports_llama_architecture(client, ollama):
    shown = client.show(ollama.model)
    info = shown["model_info"]
    assert info["general.architecture"] == "llama"
    assert info["llama.block_count"] == 30
    assert info["llama.attention.head_count_kv"] == 3


def test_streamed_generate_ends_with_nonzero_eval_count(client, ollama):
    req = GenerateRequest(model=ollama.model, prompt="Say hello.", options={"num_predict": 8, "seed": 1,
                                                                           "temperature": 0})
    events = list(client.stream(req))
    assert any(isinstance(e, TextChunk) and e.text for e in events)
    final = events[-1]
    assert isinstance(final, FinalChunk)
    assert final.timings.eval_count > 0
    assert final.timings.total > 0
    assert final.done_reason in ("stop", "length")


def test_chat_non_streamed_returns_text(client, ollama):
    req = GenerateRequest(model=ollama.model, messages=[{"role": "user", "content": "Hi"}], stream=False,
                          options={"num_predict": 4})
    result = client.generate(req)
    assert result.text
    assert result.timings.eval_count > 0


def test_unknown_model_is_model_not_found(client):
    with pytest.raises(ModelNotFound) as info:
        client.generate(GenerateRequest(model="no-such-model:1b", prompt="x"))
    assert info.value.exit_code == 1


def test_unload_with_keep_alive_zero_empties_ps(client, ollama):
    client.generate(GenerateRequest(model=ollama.model, prompt="x", options={"num_predict": 1}))
    assert ollama.model in [m["name"] for m in client.ps()]
    answer = client.unload(ollama.model)
    assert answer.get("done_reason") == "unload"
    deadline = time.monotonic() + 10
    while ollama.model in [m["name"] for m in client.ps()] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ollama.model not in [m["name"] for m in client.ps()]
