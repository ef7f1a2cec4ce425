"""`sollama models` against the real Ollama daemon serving SmolLM2 (few and quick)."""

from __future__ import annotations

import json
import os

import pytest

from ollama_ops.client.protocol import GenerateRequest
from ollama_ops.client.sync import OllamaClient
from tests import conftest

pytestmark = pytest.mark.ollama


def _names(sollama, host: str) -> list[str]:  # type: ignore[no-untyped-def]
    result = sollama("--host", host, "models", "list", "--json")
    assert result.exit_code == 0, result.output
    return [m["name"] for m in json.loads(result.stdout)["models"]]


def test_list_json_has_smollm2_with_family_llama(sollama, ollama):
    result = sollama("--host", ollama.host, "models", "list", "--json")
    assert result.exit_code == 0, result.output
    models = {m["name"]: m for m in json.loads(result.stdout)["models"]}
    smol = models[ollama.model]
    assert smol["family"] == "llama"
    assert smol["quantization"] == "Q4_1"
    assert 90_000_000 < smol["size"] < 110_000_000


def test_show_json_has_block_count_30(sollama, ollama):
    result = sollama("--host", ollama.host, "models", "show", ollama.model, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["block_count"] == 30
    assert (data["head_count"], data["head_count_kv"], data["context_length"]) == (9, 3, 8192)
    assert "completion" in data["capabilities"]


def test_import_present_blob_skips_upload_then_rm(sollama, ollama):
    gguf = conftest.test_model_file()
    if gguf is None:
        pytest.skip("the SmolLM2 GGUF is not available")
    name = f"sollama-import-test-{os.getpid()}:latest"  # unique: other test sessions share the models dir
    try:
        result = sollama("--host", ollama.host, "models", "import", str(gguf), "--name", name,
                         "--param", "temperature=0.1", "--system", "Answer briefly.", "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["uploaded"] is False  # the blob is the one smollm2:135m was made from
        assert data["statuses"][-1] == "success"
        assert name in _names(sollama, ollama.host)
        shown = json.loads(sollama("--host", ollama.host, "models", "show", name, "--json").stdout)
        assert shown["system"] == "Answer briefly."
        assert shown["parameters"]["temperature"] == "0.1"

        again = sollama("--host", ollama.host, "models", "import", str(gguf), "--name", name)
        assert again.exit_code == 1, again.output
        assert "already exists" in again.stderr
    finally:  # another spelling of the same name: rm matches names as Ollama (and `models show`) does
        removed = sollama("--host", ollama.host, "models", "rm", f"library/{name.upper()}", "--yes")
    assert removed.exit_code == 0, removed.output
    assert name not in _names(sollama, ollama.host)
    assert ollama.model in _names(sollama, ollama.host)  # the shared blob survived


def test_unload_all_empties_ps(sollama, ollama):
    with OllamaClient(ollama.url, read_timeout=120) as client:
        client.generate(GenerateRequest(model=ollama.model, prompt="Hi", options={"num_predict": 1}))
        assert ollama.model in [m["name"] for m in client.ps()]
        result = sollama("--host", ollama.host, "models", "unload", "--all", "--json")
        assert result.exit_code == 0, result.output
        assert ollama.model in json.loads(result.stdout)["unloaded"]
        assert client.ps() == []


def test_show_and_rm_match_names_alike(sollama, ollama):
    """Ollama matches names case-insensitively with default namespace and tag; `models show` (the server's
    matching) and `models rm`'s check (core/names.py) agree on every spelling."""
    for spelling in (ollama.model.upper(), f"registry.ollama.ai/library/{ollama.model}", f"library/{ollama.model}"):
        shown = sollama("--host", ollama.host, "models", "show", spelling, "--json")
        assert shown.exit_code == 0, shown.output
    absent = sollama("--host", ollama.host, "models", "show", "smollm2:136m")
    assert absent.exit_code == 1, absent.output
    refused = sollama("--host", ollama.host, "models", "rm", "smollm2:136m", "--yes")
    assert refused.exit_code == 1 and "not found" in refused.stderr, refused.output
    assert ollama.model in _names(sollama, ollama.host)
