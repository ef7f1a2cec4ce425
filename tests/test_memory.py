"""The memory formula (core.memory), the plan (core.memory_plan) and the start contract (services.memory).

Model metadata below is the real `/api/show` `model_info` of each model (values from their GGUF files / HF
configs); the tensor lists are built with each model's true shapes. SmolLM2's expected figure is what Ollama
0.23.2's `/api/ps` reported for it on this machine at num_ctx 2048 (weights 92.1 MiB + KV 45.0 MiB).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ollama_ops.config import load_settings
from ollama_ops.core.memory import (
    ModelShape,
    effective_kv_type,
    kv_cache_sizes,
    predict,
    shape_from_show,
    tensor_size,
)
from ollama_ops.core.memory_plan import Pins, compute_budget, default_context, make_plan, max_together
from ollama_ops.services import memory as memory_service

MIB, GIB = 2**20, 2**30


def llama_like_tensors(emb: int, ffn: int, layers: int, heads: int, kv_heads: int, head_dim: int, vocab: int,
                       qtype: str, embd_type: str, tied: bool) -> list[dict]:
    """A GGUF tensor list with a decoder's real shapes (attention q/k/v/o, gated FFN, norms)."""
    q, kv = heads * head_dim, kv_heads * head_dim
    out = [{"name": "token_embd.weight", "type": embd_type, "shape": [emb, vocab]},
           {"name": "output_norm.weight", "type": "F32", "shape": [emb]}]
    if not tied:
        out.append({"name": "output.weight", "type": embd_type, "shape": [emb, vocab]})
    for i in range(layers):
        out += [{"name": f"blk.{i}.attn_norm.weight", "type": "F32", "shape": [emb]},
                {"name": f"blk.{i}.ffn_norm.weight", "type": "F32", "shape": [emb]},
                {"name": f"blk.{i}.attn_q.weight", "type": qtype, "shape": [emb, q]},
                {"name": f"blk.{i}.attn_k.weight", "type": qtype, "shape": [emb, kv]},
                {"name": f"blk.{i}.attn_v.weight", "type": qtype, "shape": [emb, kv]},
                {"name": f"blk.{i}.attn_output.weight", "type": qtype, "shape": [q, emb]},
                {"name": f"blk.{i}.ffn_gate.weight", "type": qtype, "shape": [emb, ffn]},
                {"name": f"blk.{i}.ffn_up.weight", "type": qtype, "shape": [emb, ffn]},
                {"name": f"blk.{i}.ffn_down.weight", "type": qtype, "shape": [ffn, emb]}]
    return out


def show(arch: str, info: dict, tensors: list[dict]) -> dict:
    return {"model_info": {"general.architecture": arch, "tokenizer.ggml.tokens": None,
                           **{f"{arch}.{k}": v for k, v in info.items()}}, "tensors": tensors}


MODELS = {
    # HuggingFaceTB/SmolLM2-135M-Instruct Q4_1 (the test model; llama architecture, tied embeddings)
    "smollm2": (show("llama", {"block_count": 30, "context_length": 8192, "embedding_length": 576,
                               "feed_forward_length": 1536, "attention.head_count": 9,
                               "attention.head_count_kv": 3, "rope.dimension_count": 64, "vocab_size": 49152},
                     llama_like_tensors(576, 1536, 30, 9, 3, 64, 49152, "Q4_1", "Q8_0", tied=True)), 98_363_007),
    # Qwen/Qwen2.5-0.5B-Instruct Q4_K_M
    "qwen2.5:0.5b": (show("qwen2", {"block_count": 24, "context_length": 32768, "embedding_length": 896,
                                    "feed_forward_length": 4864, "attention.head_count": 14,
                                    "attention.head_count_kv": 2, "rope.freq_base": 1000000.0},
                          llama_like_tensors(896, 4864, 24, 14, 2, 64, 151936, "Q4_K", "Q8_0", tied=True)),
                     397_807_936),
    # google/gemma-2b Q4_0 (multi-query attention, 256-wide heads)
    "gemma:2b": (show("gemma", {"block_count": 18, "context_length": 8192, "embedding_length": 2048,
                                "feed_forward_length": 16384, "attention.head_count": 8,
                                "attention.head_count_kv": 1, "attention.key_length": 256,
                                "attention.value_length": 256},
                      llama_like_tensors(2048, 16384, 18, 8, 1, 256, 256000, "Q4_0", "Q8_0", tied=True)),
                 1_678_447_520),
    # google/gemma-2-2b-it Q4_0 (no flash attention: quantized KV falls back to f16)
    "gemma2:2b": (show("gemma2", {"block_count": 26, "context_length": 8192, "embedding_length": 2304,
                                  "feed_forward_length": 9216, "attention.head_count": 8,
                                  "attention.head_count_kv": 4, "attention.key_length": 256,
                                  "attention.value_length": 256, "attention.sliding_window": 4096},
                       llama_like_tensors(2304, 9216, 26, 8, 4, 256, 256000, "Q4_0", "Q6_K", tied=True)),
                  1_629_509_152),
    # google/gemma-3-1b-it Q4_K_M (Ollama engine; 5 of 6 layers keep only a 512-token window)
    "gemma3:1b": (show("gemma3", {"block_count": 26, "context_length": 32768, "embedding_length": 1152,
                                  "feed_forward_length": 6912, "attention.head_count": 4,
                                  "attention.head_count_kv": 1, "attention.key_length": 256,
                                  "attention.value_length": 256, "attention.sliding_window": 512},
                       llama_like_tensors(1152, 6912, 26, 4, 1, 256, 262144, "Q4_K", "Q6_K", tied=True)),
                  815_319_791),
    # mistralai/Mistral-7B-Instruct-v0.3 Q4_0 (stored as the llama architecture)
    "mistral:7b": (show("llama", {"block_count": 32, "context_length": 32768, "embedding_length": 4096,
                                  "feed_forward_length": 14336, "attention.head_count": 32,
                                  "attention.head_count_kv": 8, "rope.freq_base": 1000000.0, "vocab_size": 32768},
                        llama_like_tensors(4096, 14336, 32, 32, 8, 128, 32768, "Q4_0", "Q6_K", tied=False)),
                   4_113_301_824),
    # meta-llama/Llama-3.2-1B-Instruct Q8_0 (128k trained context)
    "llama3.2:1b": (show("llama", {"block_count": 16, "context_length": 131072, "embedding_length": 2048,
                                   "feed_forward_length": 8192, "attention.head_count": 32,
                                   "attention.head_count_kv": 8, "attention.key_length": 64,
                                   "attention.value_length": 64, "vocab_size": 128256},
                         llama_like_tensors(2048, 8192, 16, 32, 8, 64, 128256, "Q8_0", "Q8_0", tied=True)),
                    1_321_098_329),
}


def shape(name: str) -> ModelShape:
    shown, size = MODELS[name]
    return shape_from_show(name, shown, size)


# KV bytes per token per slot at f16: 2 (K and V) · head_dim · kv_heads · layers · 2 bytes.
@pytest.mark.parametrize(("name", "per_token"), [
    ("smollm2", 2 * 64 * 3 * 30 * 2),        # 23,040 B: 45 MiB at 2048 (Ollama logs "kv cache 45.0 MiB")
    ("qwen2.5:0.5b", 2 * 64 * 2 * 24 * 2),   # 12 KiB
    ("gemma:2b", 2 * 256 * 1 * 18 * 2),      # 18 KiB
    ("gemma2:2b", 2 * 256 * 4 * 26 * 2),     # 104 KiB
    ("mistral:7b", 2 * 128 * 8 * 32 * 2),    # 128 KiB: the well-known 256 MiB at 2048 tokens
    ("llama3.2:1b", 2 * 64 * 8 * 16 * 2),    # 32 KiB
])
def test_kv_cache_is_ollamas_formula(name, per_token):
    fp = predict(shape(name), 2048, 1, "f16")
    assert fp.kv_cache == per_token * 2048


def test_smollm2_prediction_matches_what_ollama_reported():
    fp = predict(shape("smollm2"), 2048, 1, "f16")
    assert fp.weights == 96_576_768  # "model weights" 92.1 MiB in Ollama's log
    assert fp.kv_cache == 47_185_920  # "kv cache" 45.0 MiB
    assert fp.ollama_size == 143_762_688  # /api/ps size, measured
    assert fp.graph == 101_842_944  # llama.cpp logged a 98.25 MiB CPU compute buffer; this is 97.1 MiB
    assert fp.footprint == fp.weights + fp.kv_cache + fp.graph


def test_smollm2_from_the_real_show_answer_shape():
    s = shape("smollm2")
    assert (s.block_count, s.key_length, s.value_length, s.vocab_size) == (30, 64, 64, 49152)
    assert s.heads_kv_max == 3 and s.engine == "llama.cpp" and not s.approximate


def test_gemma3_sliding_window_layers_do_not_grow_with_context():
    s = shape("gemma3:1b")
    small, large = kv_cache_sizes(s, 4096, 1, "f16"), kv_cache_sizes(s, 32768, 1, "f16")
    assert small[0] == large[0]  # a sliding layer: (512 + batch) tokens either way
    assert large[5] == 8 * small[5]  # every 6th layer is global and scales with the context
    assert s.engine == "ollama"


def test_context_is_capped_at_the_trained_length():
    fp = predict(shape("gemma:2b"), 32768)
    assert fp.num_ctx == 8192
    assert any("capped" in note for note in fp.notes)


def test_without_tensors_the_file_size_stands_for_the_weights():
    shown, size = MODELS["smollm2"]  # has vocab_size: only the missing tensor list makes it approximate
    s = shape_from_show("s", {**shown, "tensors": []}, size)
    assert s.layer_weights == size and s.input_weights == 0 and s.approximate
    unknown = [{"name": "blk.0.attn_q.weight", "type": "IQ2_XXS", "shape": [576, 576]}]
    assert shape_from_show("s", {**shown, "tensors": unknown}, size).layer_weights == size


@pytest.mark.parametrize(("kind", "shape_", "expected"), [
    ("F32", [576], 2304), ("Q4_1", [576, 1536], 576 * 1536 * 20 // 32), ("Q8_0", [576, 49152], 30_081_024),
    ("Q4_K", [256, 4], 4 * 144), ("Q6_K", [256], 210), ("IQ2_XXS", [256], None)])
def test_tensor_sizes(kind, shape_, expected):
    assert tensor_size(kind, shape_) == expected


@pytest.mark.parametrize(("name", "fa", "requested", "expected"), [
    ("smollm2", None, "q8_0", "f16"),      # llama.cpp runner: quantized KV only with flash attention set on
    ("smollm2", True, "q8_0", "q8_0"),
    ("gemma2:2b", True, "q4_0", "f16"),   # gemma2 does not support flash attention
    ("gemma3:1b", None, "q4_0", "q4_0"),  # Ollama engine, flash attention on by default
    ("gemma3:1b", False, "q4_0", "f16"),
])
def test_effective_kv_type(name, fa, requested, expected):
    assert effective_kv_type(shape(name), requested, fa) == expected


NAMES = sorted(MODELS)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), ctx=st.integers(4, 131072), more=st.integers(0, 65536),
       parallel=st.integers(1, 8), kv=st.sampled_from(["f16", "q8_0", "q4_0"]), gpu=st.booleans())
def test_monotonic_in_context(name, ctx, more, parallel, kv, gpu):
    s = shape(name)
    a = predict(s, ctx, parallel, kv, gpu=gpu, flash_attention=True)
    b = predict(s, ctx + more, parallel, kv, gpu=gpu, flash_attention=True)
    assert a.kv_cache <= b.kv_cache and a.footprint <= b.footprint and a.ollama_size <= b.ollama_size


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), ctx=st.integers(256, 32768), parallel=st.integers(1, 7),
       more=st.integers(1, 8), kv=st.sampled_from(["f16", "q8_0", "q4_0"]))
def test_monotonic_in_parallel(name, ctx, parallel, more, kv):
    s = shape(name)
    a, b = predict(s, ctx, parallel, kv, flash_attention=True), predict(s, ctx, parallel + more, kv,
                                                                         flash_attention=True)
    assert a.kv_cache < b.kv_cache and a.footprint < b.footprint


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from([n for n in NAMES if n != "gemma2:2b"]), ctx=st.integers(64, 65536),
       parallel=st.integers(1, 4), gpu=st.booleans())
def test_quantized_kv_is_smaller(name, ctx, parallel, gpu):
    s = shape(name)
    q4, q8, f16 = (predict(s, ctx, parallel, kv, gpu=gpu, flash_attention=True) for kv in ("q4_0", "q8_0", "f16"))
    assert q4.kv_cache < q8.kv_cache < f16.kv_cache
    assert q4.footprint < q8.footprint < f16.footprint


# -- the plan ---------------------------------------------------------------------------------------------------

def test_budget_percent_and_bytes():
    assert compute_budget(10 * GIB, "20%").total == 8 * GIB
    b = compute_budget(10 * GIB, "2GiB", vram=4 * GIB, gpus=1)
    assert (b.ram, b.vram, b.total) == (8 * GIB, 4 * GIB, 12 * GIB)
    assert compute_budget(GIB, "4GiB").total == 0


@pytest.mark.parametrize(("vram", "ctx"), [(0, 4096), (16 * GIB, 4096), (24 * GIB, 32768), (80 * GIB, 262144)])
def test_default_context_follows_ollamas_vram_tiers(vram, ctx):
    assert default_context(vram) == ctx


def test_max_together_counts_the_largest_first():
    assert max_together([5, 1, 1, 1], 6) == 2
    assert max_together([], 10) == 0


def test_plan_all_fit_recommends_defaults():
    plan = make_plan([shape("smollm2"), shape("qwen2.5:0.5b")], compute_budget(16 * GIB, "20%"))
    recs = {r.var: r.value for r in plan.recommendations}
    assert plan.fits_together and all(m.fits_alone for m in plan.models)
    assert recs == {"OLLAMA_MAX_LOADED_MODELS": "3", "OLLAMA_NUM_PARALLEL": "1", "OLLAMA_CONTEXT_LENGTH": "4096",
                    "OLLAMA_KV_CACHE_TYPE": "f16"}


def test_plan_shrinks_context_then_quantizes_to_fit_the_largest():
    mistral = shape("mistral:7b")
    need = predict(mistral, 4096).footprint
    tight = compute_budget(need - 1, "0%")  # one byte short at 4096 / f16
    plan = make_plan([mistral], tight)
    assert plan.models[0].fits_alone
    assert (plan.num_ctx, plan.kv_cache_type) in ((4096, "q8_0"), (2048, "f16"))
    recs = {r.var: r.value for r in plan.recommendations}
    if plan.kv_cache_type != "f16":
        assert recs["OLLAMA_FLASH_ATTENTION"] == "1"


def test_plan_keeps_pinned_values_and_marks_them():
    plan = make_plan([shape("mistral:7b")], compute_budget(GIB, "0%"), pins=Pins(context_length=8192,
                                                                                kv_cache_type="f16"))
    assert plan.num_ctx == 8192 and plan.kv_cache_type == "f16"
    pinned = {r.var for r in plan.recommendations if r.pinned}
    assert pinned == {"OLLAMA_CONTEXT_LENGTH", "OLLAMA_KV_CACHE_TYPE"}
    assert not plan.models[0].fits_alone


def test_plan_limits_loaded_models_to_what_fits_together():
    shapes = [shape("mistral:7b"), shape("gemma:2b"), shape("gemma2:2b")]
    fps = sorted((predict(s, 4096).footprint for s in shapes), reverse=True)
    plan = make_plan(shapes, compute_budget(fps[0] + fps[1] + fps[2] // 2, "0%"), num_ctx=4096, kv_cache_type="f16")
    assert plan.max_together == 2 and not plan.fits_together
    assert {r.var: r.value for r in plan.recommendations}["OLLAMA_MAX_LOADED_MODELS"] == "2"


# -- services.memory: the contract `sollama start` uses ---------------------------------------------------------

def test_start_env_without_a_plan_uses_ram_only_defaults():
    env = memory_service.start_env(load_settings())
    assert set(env) == {"OLLAMA_MAX_LOADED_MODELS", "OLLAMA_NUM_PARALLEL", "OLLAMA_CONTEXT_LENGTH",
                        "OLLAMA_KV_CACHE_TYPE"}
    assert env["OLLAMA_NUM_PARALLEL"] == "1" and 1 <= int(env["OLLAMA_MAX_LOADED_MODELS"]) <= 3


def test_start_env_uses_the_saved_plan_minus_pinned_values():
    path = memory_service.plan_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    recs = [{"var": "OLLAMA_MAX_LOADED_MODELS", "value": "2"}, {"var": "OLLAMA_NUM_PARALLEL", "value": "4"},
            {"var": "OLLAMA_CONTEXT_LENGTH", "value": "2048"}, {"var": "OLLAMA_KV_CACHE_TYPE", "value": "q8_0"},
            {"var": "OLLAMA_FLASH_ATTENTION", "value": "1"}, {"var": "PATH", "value": "/evil"}]
    path.write_text(json.dumps({"recommendations": recs}))
    settings_ = load_settings(environ={"SOLLAMA_SERVER_CONTEXT_LENGTH": "8192"})
    env = memory_service.start_env(settings_)
    assert env == {"OLLAMA_MAX_LOADED_MODELS": "2", "OLLAMA_NUM_PARALLEL": "4", "OLLAMA_KV_CACHE_TYPE": "q8_0",
                   "OLLAMA_FLASH_ATTENTION": "1"}


def test_start_env_ignores_a_corrupt_plan():
    path = memory_service.plan_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert memory_service.start_env(load_settings())["OLLAMA_NUM_PARALLEL"] == "1"


def test_budget_is_ram_minus_reserve_plus_vram():
    import psutil

    from ollama_ops.edges.system import gpu_facts

    total = psutil.virtual_memory().total
    vram = sum(g.total for g in gpu_facts())
    got = memory_service.budget(load_settings(environ={"SOLLAMA_MEMORY_RESERVE": "25%"}))
    assert got == total - int(total * 25 / 100) + vram


# -- the command against the stub (runs without the real daemon) --------------------------------------------------

def test_memory_command_against_the_stub(sollama, stub, isolated):
    result = sollama("--host", stub.host, "memory", "--num-ctx", "2048", "--json", "--save")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    (model,) = plan["models"]
    assert model["name"] == "stub-model:latest" and model["num_ctx"] == 2048
    assert model["kv_cache"] == 2048 * 2 * 64 * 3 * 30 * 2  # head size 576 / 9 = 64 when key_length is absent
    assert model["weights"] == 145_000_000  # no tensor list: the /api/tags size stands in
    assert any("approximate" in note for note in model["notes"])
    assert (isolated / "state" / "memory-plan.json").is_file()


def test_memory_human_view_names_the_recommendations(sollama, stub):
    result = sollama("--host", stub.host, "memory")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("budget ")
    for var in ("OLLAMA_MAX_LOADED_MODELS=", "OLLAMA_NUM_PARALLEL=1", "OLLAMA_CONTEXT_LENGTH=",
                "OLLAMA_KV_CACHE_TYPE=f16"):
        assert var in result.stdout


def test_memory_of_an_unreachable_server_exits_4(sollama):
    from tests.conftest import free_port

    result = sollama("--host", f"127.0.0.1:{free_port()}", "memory")
    assert result.exit_code == 4 and "cannot connect" in result.stderr
