"""Model names as Ollama reads them (core/names.py): one normal form, and Ollama's validity rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.core.names import ModelName, normalize_name, parse_model_name


@pytest.mark.parametrize("text, short", [
    ("smollm2", "smollm2:latest"), ("SmolLM2:135M", "smollm2:135m"), ("smollm2:135m", "smollm2:135m"),
    ("library/smollm2:135m", "smollm2:135m"), ("registry.ollama.ai/library/smollm2:135m", "smollm2:135m"),
    ("https://registry.ollama.ai/library/smollm2", "smollm2:latest"), ("me/model", "me/model:latest"),
    ("localhost:5000/me/model:q4", "localhost:5000/me/model:q4"), ("smollm2:135m@sha256:abc", "smollm2:135m"),
    ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "hf.co/bartowski/llama-3.2-1b-instruct-gguf:q4_k_m"),
])
def test_normal_form(text, short):
    assert normalize_name(text) == short


def test_parts_and_defaults():
    assert parse_model_name("me/m:1") == ModelName("registry.ollama.ai", "me", "m", "1")
    assert parse_model_name("h.io:8/ns/m") == ModelName("h.io:8", "ns", "m", "latest")


@pytest.mark.parametrize("text", ["", " ", "a b", "-a", ".a", "a/b/c/d/e!", "ns.x/m", "m:t/x", "é", "m:" + "t" * 81,
                                  "x:", "a\x1b[2J"])
def test_invalid_names_raise_value_error(text):
    with pytest.raises(ValueError):
        parse_model_name(text)


@given(st.text(max_size=60))
def test_normalize_never_raises_and_is_idempotent_on_valid_names(text):
    key = normalize_name(text)
    try:
        parse_model_name(text)
    except ValueError:
        return
    assert normalize_name(key) == key
    assert normalize_name(text.upper()) == key or not text.upper().isascii()


_part = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(_part, _part)
def test_every_spelling_of_a_default_name_has_one_key(model, tag):
    keys = {normalize_name(f"{model}:{tag}"), normalize_name(f"library/{model}:{tag}"),
            normalize_name(f"registry.ollama.ai/library/{model}:{tag}"), normalize_name(f"{model.upper()}:{tag}")}
    assert keys == {f"{model}:{tag}".lower()}
