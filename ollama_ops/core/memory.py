"""How much memory a model takes once Ollama loads it: Ollama's own estimate, ported (pure).

Ported from Ollama v0.23.2: `fs/ggml/ggml.go` (`GraphSize`, `kvCacheBytesPerElement`, tensor type sizes),
`llm/server.go` (`NewLlamaServer` caps num_ctx at the trained context and num_batch at num_ctx; `llamaServer.Load`
builds the estimate; `MemorySize` is what `/api/ps` reports as `size`) and `server/sched.go` (parallel forced to 1
for some architectures and for embedding models).

What `/api/ps` `size` holds, and so what `Footprint.ollama_size` predicts:
- llama.cpp runner on CPU: layer weights (every `blk.*` tensor plus `output_norm` and `output`, or `token_embd`
  when the output is tied to it) + KV cache. The compute graph is not counted, though llama.cpp allocates it.
- with a GPU, or for architectures that run on Ollama's own engine: the graph is counted as well (for the Ollama
  engine the input embedding too, since its runner reports the real allocations).

`Footprint.footprint` is the conservative need used for the fit decisions: every weight, the KV cache and the
full-offload compute graph (for SmolLM2 at num_ctx 2048 the estimate is 97.1 MiB, llama.cpp logs a 98.25 MiB
CPU compute buffer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KV_BYTES: dict[str, float] = {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}
KV_CACHE_TYPES = tuple(KV_BYTES)
DEFAULT_BATCH = 512
MIN_CTX = 4

# Architectures Ollama always runs on its own engine (ggml.KV.OllamaEngineRequired).
OLLAMA_ENGINE = frozenset({
    "bert", "deepseek2", "deepseekocr", "gemma3", "gemma3n", "gemma4", "gptoss", "gpt-oss", "laguna", "llama4",
    "mistral3", "mllama", "nemotron_h", "nemotron_h_moe", "nemotron_h_omni", "nomic-bert", "olmo3", "qwen25vl",
    "qwen3", "qwen3moe", "qwen35", "qwen35moe", "qwen3next", "qwen3vl", "qwen3vlmoe", "glm4moelite", "glmocr", "lfm2",
    "lfm2moe"})
# Architectures with flash attention on by default (ggml.GGML.FlashAttention).
FLASH_ATTENTION_DEFAULT = frozenset({
    "bert", "gemma3", "gemma4", "glm4moelite", "glmocr", "gptoss", "gpt-oss", "lfm2", "lfm2moe", "mistral3",
    "nemotron_h", "nemotron_h_moe", "nemotron_h_omni", "olmo3", "qwen3", "qwen3moe", "qwen35", "qwen35moe",
    "qwen3next", "qwen3vl", "qwen3vlmoe"})
# Architectures the scheduler never gives more than one parallel slot (server/sched.go).
SINGLE_SLOT = frozenset({"mllama", "qwen3vl", "qwen3vlmoe", "qwen35", "qwen35moe", "qwen3next", "lfm2", "lfm2moe",
                         "nemotron_h", "nemotron_h_moe", "nemotron_h_omni"})

# GGML tensor types as /api/show names them: (block size, bytes per block) (fs/ggml/ggml.go TypeSize).
TENSOR_TYPES: dict[str, tuple[int, int]] = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "F64": (1, 8), "I8": (1, 1), "I16": (1, 2), "I32": (1, 4),
    "I64": (1, 8), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
    "Q8_1": (32, 36), "MXFP4": (32, 17), "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144),
    "Q5_K": (256, 176), "Q6_K": (256, 210), "Q8_K": (256, 292),
}


@dataclass(frozen=True)
class ModelShape:
    """The facts about one model that the estimate needs (from `/api/show` and the `/api/tags` size)."""

    name: str
    architecture: str
    file_size: int
    block_count: int
    embedding_length: int
    head_count: tuple[int, ...]  # per layer (0 = a recurrent layer)
    head_count_kv: tuple[int, ...]
    key_length: int
    value_length: int
    context_length: int = 0  # trained context; 0 = unknown
    vocab_size: int = 0
    sliding_window: int = 0
    ssm: tuple[int, int, int, int] = (0, 0, 0, 0)  # conv_kernel, inner_size, state_size, group_count
    feed_forward_length: int = 0
    layer_weights: int = 0  # blk.* + output (what Ollama counts as model weights)
    input_weights: int = 0  # token_embd when a separate output tensor exists
    expert_gate: tuple[int, int] = (0, 0)  # (size of blk.0.ffn_gate_exps, width of blk.0.ffn_gate.0) for MoE
    embedding_model: bool = False
    approximate: bool = False  # some metadata was missing and a default was used

    @property
    def heads_max(self) -> int:
        return max(self.head_count, default=1)

    @property
    def heads_kv_max(self) -> int:
        return max(self.head_count_kv, default=1)

    @property
    def engine(self) -> str:
        return "ollama" if self.architecture in OLLAMA_ENGINE else "llama.cpp"


@dataclass(frozen=True)
class Footprint:
    """The predicted memory of one loaded model at one setting (bytes)."""

    num_ctx: int  # per slot, after Ollama's cap at the trained context
    parallel: int
    kv_cache_type: str  # the type Ollama will really use (quantized types need flash attention)
    weights: int  # every tensor
    kv_cache: int
    graph: int
    ollama_size: int  # what /api/ps `size` will report
    footprint: int  # conservative total need: all weights + KV cache + compute graph
    notes: tuple[str, ...] = field(default_factory=tuple)


def tensor_size(kind: str, shape: list[int] | tuple[int, ...]) -> int | None:
    """Bytes of one tensor, as Ollama computes it; None for a type it does not size."""
    spec = TENSOR_TYPES.get(kind.upper())
    if spec is None:
        return None
    elements = 1
    for n in shape:
        elements *= int(n)
    block, size = spec
    return elements * size // block


def _per_layer(value: Any, layers: int, default: int) -> tuple[tuple[int, ...], bool]:
    """An int-or-array metadata value spread over the layers, and whether it had to be guessed."""
    if isinstance(value, list):
        numbers = [int(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not numbers:  # /api/show blanks arrays longer than 5 elements unless verbose
            return (default,) * layers, True
        fill = numbers[0] if len(numbers) == 1 else default
        return tuple(numbers[i] if i < len(numbers) else fill for i in range(layers)), False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (int(value),) * layers, False
    return (default,) * layers, True


def _int(value: Any, default: int = 0) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _weights(tensors: list[dict[str, Any]]) -> tuple[int, int, tuple[int, int], int] | None:
    """(layer weights, input weights, expert gate, vocab) from the tensor list; None if a type is unknown."""
    sizes: dict[str, int] = {}
    shapes: dict[str, list[int]] = {}
    for tensor in tensors:
        name = str(tensor.get("name", ""))
        shape = [int(n) for n in tensor.get("shape") or []]
        size = tensor_size(str(tensor.get("type", "")), shape)
        if size is None:
            return None
        sizes[name], shapes[name] = size, shape
    groups: dict[str, int] = {}
    for name, size in sizes.items():
        # Ollama groups "blk.N.x" under "blk.N" and "output.weight" under "output".
        key = ".".join(name.split(".")[:2]) if name.startswith("blk.") else name.rsplit(".", 1)[0]
        groups[key] = groups.get(key, 0) + size
    layer = sum(v for k, v in groups.items() if k.startswith("blk.")) + groups.get("output_norm", 0)
    if "output" in groups:
        layer += groups["output"]
        input_weights = groups.get("token_embd", 0)
    else:  # tied embeddings: the one matrix is counted with the layers
        layer += groups.get("token_embd", 0)
        input_weights = 0
    gate0 = shapes.get("blk.0.ffn_gate.0.weight", [])
    expert_gate = (sizes.get("blk.0.ffn_gate_exps.weight", 0), gate0[1] if len(gate0) > 1 else 0)
    vocab = shapes.get("token_embd.weight", [0])[-1]
    return layer, input_weights, expert_gate, vocab


def shape_from_show(name: str, shown: dict[str, Any], file_size: int) -> ModelShape:
    """Build a ModelShape from an `/api/show` answer (`model_info`, `tensors`) and the model's size in bytes."""
    info = dict(shown.get("model_info") or {})
    arch = str(info.get("general.architecture") or "unknown")

    def kv(key: str) -> Any:
        return info.get(f"{arch}.{key}")

    layers = _int(kv("block_count"))
    heads, guessed_h = _per_layer(kv("attention.head_count"), layers, 1)
    heads_kv, guessed_kv = _per_layer(kv("attention.head_count_kv"), layers, heads[0] if heads else 1)
    embedding = _int(kv("embedding_length"))
    heads_min = min(heads, default=1) or 0
    head_dim = embedding // heads_min if heads_min > 0 else 0
    tokens = info.get("tokenizer.ggml.tokens")
    vocab = _int(kv("vocab_size")) or (len(tokens) if isinstance(tokens, list) else 0)
    weights = _weights(list(shown.get("tensors") or []))
    sized = weights is not None and weights[0] > 0
    layer_weights, input_weights, expert_gate = file_size, 0, (0, 0)  # without tensor sizes, the file stands in
    if weights is not None and sized:
        layer_weights, input_weights, expert_gate, tensor_vocab = weights
        vocab = vocab or tensor_vocab
    return ModelShape(
        name=name, architecture=arch, file_size=int(file_size), block_count=layers, embedding_length=embedding,
        head_count=heads, head_count_kv=heads_kv, key_length=_int(kv("attention.key_length"), head_dim),
        value_length=_int(kv("attention.value_length"), head_dim), context_length=_int(kv("context_length")),
        vocab_size=vocab, sliding_window=_int(kv("attention.sliding_window")),
        ssm=(_int(kv("ssm.conv_kernel")), _int(kv("ssm.inner_size")), _int(kv("ssm.state_size")),
             _int(kv("ssm.group_count"))),
        feed_forward_length=_int(kv("feed_forward_length")) if not isinstance(kv("feed_forward_length"), list) else 0,
        layer_weights=layer_weights, input_weights=input_weights, expert_gate=expert_gate,
        embedding_model=f"{arch}.pooling_type" in info,
        approximate=guessed_h or guessed_kv or not sized or not vocab)


def kv_cache_sizes(shape: ModelShape, num_ctx: int, parallel: int, kv_cache_type: str,
                   batch: int = DEFAULT_BATCH) -> list[int]:
    """Per-layer KV cache bytes (GraphSize's first half): ctx·parallel·(k+v)·heads_kv·bytes per attention layer."""
    context = num_ctx * parallel
    per = KV_BYTES.get(kv_cache_type, 2.0)
    k_plus_v = shape.key_length + shape.value_length
    conv, inner, state, groups = shape.ssm
    out = []
    for heads, heads_kv in zip(shape.head_count, shape.head_count_kv, strict=False):
        if heads > 0 and heads_kv > 0:
            out.append(int(context * k_plus_v * heads_kv * per))
        else:  # a recurrent layer: constant state, always f32
            rolling = (conv - 1) * (inner + 2 * groups * state) if conv > 0 else 0
            out.append((rolling + state * inner) * 4)
    arch = shape.architecture
    if arch == "gemma3" and shape.sliding_window:
        window = parallel * shape.sliding_window + batch
        for i in range(len(out)):
            if (i + 1) % 6:  # every 6th layer is global; the others only keep the sliding window
                out[i] = int(window * k_plus_v * shape.heads_kv_max * per)
    elif arch in ("gptoss", "gpt-oss"):
        for i in range(len(out)):
            base = k_plus_v * shape.heads_kv_max * per
            out[i] = int(base * (parallel * 4096 + batch)) if i % 2 == 0 else int(base * context)
    return out


def graph_size(shape: ModelShape, num_ctx: int, parallel: int, kv_total: int, batch: int = DEFAULT_BATCH,
               flash_attention: bool = False) -> tuple[int, int]:
    """(partial offload, full offload) compute graph bytes: GraphSize's per-architecture formulas."""
    context = num_ctx * parallel
    emb, heads, heads_kv, vocab = shape.embedding_length, shape.heads_max, shape.heads_kv_max, shape.vocab_size
    heads_min = min(shape.head_count, default=1)
    emb_heads = emb // heads_min if heads_min > 0 else 0  # EmbeddingHeadCountMax
    emb_k = shape.key_length
    vocab_graph = 4 * batch * (emb + vocab)
    full = partial = 0
    arch = shape.architecture
    if arch in ("llama", "llama4"):
        full = max(4 * batch * (1 + 4 * emb + context * (1 + heads)), vocab_graph)
        partial = 4 * batch * emb + max(
            4 * batch * (1 + emb + max(context, emb)) + emb * emb * 9 // 16
            + 4 * context * (batch * heads + emb_heads * heads_kv),
            vocab_graph + emb * vocab * 105 // 128)
        gate_size, gate_width = shape.expert_gate
        if gate_size:
            ff = shape.feed_forward_length
            partial = max(3 * gate_size + 4 * batch * (2 * ff + heads_kv + emb + context + emb_heads * heads_kv),
                          4 * (context * batch * heads + context * emb_heads * heads_kv + batch * 1024
                               + emb_heads * heads_kv * batch))
        elif gate_width:
            full = 4 * batch * (2 + 3 * emb + context * (1 + heads) + 2 * heads_kv + gate_width)
            partial = max(
                4 * batch * (3 + emb_heads * heads_kv + emb + context * (1 + heads) + gate_width)
                + (emb * emb + 3 * emb * heads_kv * gate_width) * 9 // 16,
                4 * batch * (1 + 2 * emb + context * (1 + heads)) + emb * (6 * context * heads_kv // heads
                                                                           + emb * 9 // 16))
    elif arch in ("gemma", "gemma2", "gemma3", "gemma3n"):
        full = max(vocab_graph, 4 * batch * (2 + context + context * heads + 2 * emb + 2 * emb_k * heads))
        partial = max(4 * emb * batch + emb * vocab * 105 // 128 + 4 * vocab * batch,
                      4 * batch * (2 * emb + 1 + 2 * emb_k * heads + context + context * heads)
                      + 4 * emb_k * context * 8 + emb * emb_k * heads * 9 // 16)
        if arch == "gemma3n":
            full, partial = full * 4, partial * 4
    elif arch == "command-r":
        full = max(vocab_graph, 4 * batch * (2 + 4 * emb + context * (1 + heads)))
        partial = max(vocab_graph + emb * vocab * 105 // 128,
                      4 * batch * (1 + 2 * emb + context * (1 + heads)) + 4 * emb * context + emb * emb * 9 // 16)
    elif arch == "qwen2":
        full = max(vocab_graph, 4 * batch * (1 + 2 * emb + context + context * heads))
        partial = max(vocab_graph + emb * vocab * 105 // 128,
                      4 * (batch * (1 + 2 * emb + context * (1 + heads)) + emb * (1 + context)))
    elif arch == "phi2":
        full = max(vocab_graph, 4 * batch * (1 + 4 * emb + context + context * heads))
        partial = max(4 * batch * (2 * emb + vocab) + emb * vocab * 105 // 128,
                      4 * batch * (2 + 3 * emb + context + context * heads))
    elif arch == "stablelm":
        full = 4 * batch * (context * (1 + heads) + 3 * emb + 2)
        partial = max(4 * batch * (vocab + 2 * emb), full)
    elif arch == "deepseek2":
        full = max(4 * batch * (3 * emb + vocab),
                   4 * batch * (3 * emb + 2 + context * (1 + heads_kv) + 2 * emb_k * heads_kv))
        partial = max(4 * batch * (3 * emb + vocab) + emb * vocab * 105 // 128,
                      4 * batch * (2 * emb + 1 + 2 * emb_k * heads_kv + context + context * heads_kv)
                      + 4 * emb_k * context * heads_kv + emb * emb_k * heads_kv * 9 // 16)
    elif arch == "chatglm":
        full = vocab_graph
        partial = vocab_graph + emb * vocab * 105 // 128
    elif arch in ("gptoss", "gpt-oss"):
        partial = 2 * heads // (min(shape.head_count_kv, default=1) or 1) * kv_total // 6
        if flash_attention:
            partial = (4 * parallel + (context >> 10) + 110) * 2**20
    if partial == 0:  # llm/server.go: the fallback for architectures GraphSize does not know
        partial = heads // (min(shape.head_count_kv, default=1) or 1) * kv_total // 6
    if full == 0:
        full = partial
    return partial, full


def supports_flash_attention(shape: ModelShape) -> bool:
    """ggml.GGML.SupportsFlashAttention: not for embedding models or gemma2/grok; equal K and V head sizes."""
    if shape.embedding_model:
        return False
    if shape.architecture in ("qwen35", "qwen35moe", "qwen3next"):
        return True
    if shape.architecture in ("gemma2", "grok"):
        return False
    return shape.key_length != 0 and shape.key_length == shape.value_length


def effective_kv_type(shape: ModelShape, requested: str, flash_attention: bool | None) -> str:
    """The KV cache type Ollama really uses: quantized types need flash attention, else it falls back to f16.

    `flash_attention` is OLLAMA_FLASH_ATTENTION (None = unset). The llama.cpp runner honours a quantized type only
    when flash attention is set on explicitly; the Ollama engine when it is on (its default for some models)."""
    if requested not in ("q8_0", "q4_0"):
        return "f16"
    default_on = shape.architecture in FLASH_ATTENTION_DEFAULT
    if shape.engine == "ollama":
        on = default_on if flash_attention is None else flash_attention
    else:
        on = flash_attention is True
    return requested if on and supports_flash_attention(shape) else "f16"


def effective_parallel(shape: ModelShape, parallel: int) -> int:
    if shape.embedding_model or shape.architecture in SINGLE_SLOT:
        return 1
    return max(1, parallel)


def predict(shape: ModelShape, num_ctx: int, parallel: int = 1, kv_cache_type: str = "f16", *, gpu: bool = False,
            flash_attention: bool | None = None, batch: int = DEFAULT_BATCH) -> Footprint:
    """Predict a model's memory when loaded with `num_ctx` per slot, `parallel` slots and a KV cache type."""
    notes: list[str] = []
    ctx = max(MIN_CTX, num_ctx)
    if shape.context_length and ctx > shape.context_length:
        notes.append(f"num_ctx capped at the trained context {shape.context_length}")
        ctx = shape.context_length
    slots = effective_parallel(shape, parallel)
    if slots != parallel:
        notes.append(f"Ollama loads {shape.architecture} with {slots} slot")
    batch = ctx if shape.embedding_model and batch < ctx else min(batch, ctx)
    kv_type = effective_kv_type(shape, kv_cache_type, flash_attention)
    if kv_type != kv_cache_type and kv_cache_type != "f16":
        notes.append(f"{kv_cache_type} KV cache needs flash attention here; Ollama falls back to f16")
    kv_total = sum(kv_cache_sizes(shape, ctx, slots, kv_type, batch))
    fa_on = kv_type != "f16" or (flash_attention is not False and shape.architecture in FLASH_ATTENTION_DEFAULT)
    _, full = graph_size(shape, ctx, slots, kv_total, batch, fa_on)
    ollama_size = shape.layer_weights + kv_total
    if gpu or shape.engine == "ollama":
        ollama_size += full
    if shape.engine == "ollama":
        ollama_size += shape.input_weights
    if shape.approximate:
        notes.append("some model metadata was missing; the estimate is approximate")
    footprint = shape.layer_weights + shape.input_weights + kv_total + full
    return Footprint(num_ctx=ctx, parallel=slots, kv_cache_type=kv_type,
                     weights=shape.layer_weights + shape.input_weights, kv_cache=kv_total, graph=full,
                     ollama_size=ollama_size, footprint=footprint, notes=tuple(notes))
