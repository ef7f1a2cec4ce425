"""The OpenAI-compatible API and synthetic prompts against the real Ollama daemon serving SmolLM2."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.ollama


def _bench(sollama, ollama, *args: str) -> dict:
    result = sollama("--host", ollama.host, "bench", "-m", ollama.model, "--json", "-o", "temperature=0", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("api", ["generate", "openai-chat"])
@pytest.mark.parametrize("tokens", [64, 512])
def test_synthetic_prompts_have_the_requested_length_by_ollamas_count(sollama, ollama, api: str,
                                                                       tokens: int) -> None:
    """Ollama's own prompt_eval_count (native) / usage.prompt_tokens (/v1) of every measured prompt is within ±2 of
    what was asked; the output length asked with num_predict / max_tokens is what came back."""
    data = _bench(sollama, ollama, "--api", api, "-n", "2", "--warmup", "0", "--prompt-tokens", str(tokens),
                  "--output-tokens", "4")
    lengths = data["lengths"]
    assert data["summary"]["requests_ok"] == 2
    assert lengths["prompt_requested"]["min"] == lengths["prompt_requested"]["max"] == tokens
    assert tokens - 2 <= lengths["prompt_achieved"]["min"] <= lengths["prompt_achieved"]["max"] <= tokens + 2
    assert lengths["prompt_off_max"] <= 2
    assert data["summary"]["prompt_tokens"] == pytest.approx(2 * tokens, abs=4)
    assert lengths["output_achieved"]["max"] <= 4 and lengths["output_overran"] == 0


def test_openai_chat_and_generate_count_the_same_tokens(sollama, ollama) -> None:
    """The same synthetic workload on both APIs: the server counts the same prompt and output tokens (the figures
    that cannot be flaky; the tok/s comparison is `benchmarks/api_agreement.py`)."""
    args = ("-n", "2", "--warmup", "0", "--prompt-tokens", "64", "--output-tokens", "8", "--seed", "5")
    native = _bench(sollama, ollama, "--api", "generate", *args)
    openai = _bench(sollama, ollama, "--api", "openai-chat", *args)
    for data in (native, openai):
        assert data["summary"]["requests_ok"] == 2 and data["summary"]["output_tokens_source"] == "server"
    assert native["synthetic"]["overhead_tokens"] == openai["synthetic"]["overhead_tokens"]
    assert native["summary"]["prompt_tokens"] == openai["summary"]["prompt_tokens"]
    assert native["summary"]["output_tokens"] == openai["summary"]["output_tokens"] == 16  # temperature 0, 8 each
    assert native["summary"]["breakdown"] is not None and openai["summary"]["breakdown"] is None
    assert openai["breakdown_absent"] and native["breakdown_absent"] is None
