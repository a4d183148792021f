"""Peak GPU memory of a run, estimated before it runs (used by `repro preflight`).

Estimates, stated so they can be checked (GiB = 2^30 bytes):
- training: base weights at their precision (8-bit: 1 byte per linear weight, embeddings and head at
  `weights_dtype`; 4-bit: half a byte), trainable weights x 16 bytes (fp32 weight, gradient and two Adam moments),
  activations of one micro-batch at the cutoff (a negative brings two sequences: Align-N and Misalign; DPO chosen
  and rejected): 34 x hidden bytes per token and layer for bf16 activations with fused attention (Korthikanti et
  al. 2022, no s^2 term), or, with gradient checkpointing, each layer's input plus one layer recomputed; the logits
  and their gradient (2 x 2 bytes x vocab per token); plus 1.5 GiB of CUDA context and allocator slack.
- generation (vLLM): weights at 2 bytes per parameter split over the tensor-parallel GPUs, the KV cache of one
  full-context sequence, and the same overhead, against vLLM's default 90% of the GPU.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

GIB = 2 ** 30
OVERHEAD_GIB = 1.5
VLLM_MEMORY_UTILIZATION = 0.9
GPU_MEMORY_GIB = {"H100": 79.6, "H200": 140.4, "A100": 80.0, "L40S": 45.0}  # as nvidia-smi reports them


@dataclass(frozen=True)
class Arch:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @property
    def linear_params(self) -> int:
        attention = self.hidden * self.heads * self.head_dim * 2 + self.hidden * self.kv_heads * self.head_dim * 2
        return self.layers * (attention + 3 * self.hidden * self.intermediate)

    @property
    def embedding_params(self) -> int:  # input embeddings and the output head (untied)
        return 2 * self.vocab * self.hidden

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params

    def module_shape(self, name: str) -> tuple[int, int]:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes = {"q_proj": (self.hidden, q), "k_proj": (self.hidden, kv), "v_proj": (self.hidden, kv),
                  "o_proj": (q, self.hidden), "gate_proj": (self.hidden, self.intermediate),
                  "up_proj": (self.hidden, self.intermediate), "down_proj": (self.intermediate, self.hidden)}
        if name not in shapes:
            raise ValueError(f"LoRA target '{name}' is not a Llama-style projection ({', '.join(shapes)})")
        return shapes[name]


# Published configurations of the paper's hub models (their config.json).
HUB_ARCHS = {
    "meta-llama/Llama-2-7b-chat-hf": Arch(32, 4096, 11008, 32, 32, 128, 32000),
    "meta-llama/Llama-2-13b-hf": Arch(40, 5120, 13824, 40, 40, 128, 32000),
    "meta-llama/Llama-2-13b-chat-hf": Arch(40, 5120, 13824, 40, 40, 128, 32000),
    "meta-llama/Llama-2-70b-chat-hf": Arch(80, 8192, 28672, 64, 8, 128, 32000),
    "mistralai/Mistral-7B-Instruct-v0.1": Arch(32, 4096, 14336, 32, 8, 128, 32000),
    "google/gemma-7b-it": Arch(28, 3072, 24576, 16, 16, 256, 256000),
    "meta-llama/Meta-Llama-3-8B-Instruct": Arch(32, 4096, 14336, 32, 8, 128, 128256),
}


def arch_from_config(path: str | Path) -> Arch:
    c = json.loads(Path(path).read_text())
    heads = c["num_attention_heads"]
    return Arch(c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"], heads,
                c.get("num_key_value_heads", heads), c.get("head_dim") or c["hidden_size"] // heads, c["vocab_size"])


BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "auto": 2}


def training_gib(arch: Arch, training, tokens_per_sequence: int, sequences: int) -> dict[str, float]:
    """Peak memory of one training process on one GPU, by part."""
    weights_bytes = BYTES[training.weights_dtype if training.weights_dtype != "auto" else training.precision]
    if training.finetune == "full":
        base = 0.0
        trainable = arch.params
    else:
        linear = 1 if training.load_in_8bit else 0.5 if training.load_in_4bit else weights_bytes
        base = arch.linear_params * linear + arch.embedding_params * weights_bytes
        trainable = arch.layers * sum(training.lora.r * sum(arch.module_shape(t)) for t in training.lora.targets)
    tokens = tokens_per_sequence * sequences
    if training.gradient_checkpointing:
        activations = tokens * arch.hidden * 2 * arch.layers + 34 * arch.hidden * tokens
    else:
        activations = 34 * arch.hidden * tokens * arch.layers
    logits = tokens * arch.vocab * 2 * 2
    parts = {"weights": base / GIB, "trainable_and_optimiser": trainable * 16 / GIB,
             "activations": activations / GIB, "logits": logits / GIB, "overhead": OVERHEAD_GIB}
    return {**parts, "total": sum(parts.values())}


def generation_gib(arch: Arch, context: int, tensor_parallel: int) -> dict[str, float]:
    """Per GPU of a vLLM engine: weights at 2 bytes over the tensor-parallel GPUs and one full-context sequence."""
    weights = arch.params * 2 / tensor_parallel
    kv_cache = 2 * arch.layers * arch.kv_heads * arch.head_dim * 2 * context / tensor_parallel
    parts = {"weights": weights / GIB, "kv_cache_one_sequence": kv_cache / GIB, "overhead": OVERHEAD_GIB}
    return {**parts, "total": sum(parts.values())}
