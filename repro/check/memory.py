"""Peak GPU memory of a run, estimated before it runs (used by `repro preflight`).

Training (GiB = 2^30 bytes) is the sum of
- base weights at their precision: 8-bit 1 byte per linear weight, 4-bit half a byte; the parameters a k-bit
  model keeps unquantised (embeddings, output layer, norms) are cast to fp32 by peft's
  `prepare_model_for_kbit_training`, so 4 bytes each; full fine-tuning holds fp32 weights;
- trainable parameters x 16 bytes (fp32 weight or master copy, its gradient, two Adam moments; for full
  fine-tuning the fp32 weights above are the master copy, so 12 more);
- activations of one micro-batch: per token and layer ACT_HIDDEN bytes per hidden unit + ACT_INTERMEDIATE per MLP
  unit (bf16 under autocast), + ACT_FP32_RESIDUAL per hidden unit when the weights are fp32 (full fine-tuning:
  the residual stream stays fp32); with gradient checkpointing only each layer's input is kept (2 or 4 bytes per
  hidden unit) plus one layer recomputed;
- the loss: LOGITS bytes per logit from the logits path, or HIDDEN_LOSS_GIB for the chunked hidden-state loss.
ACT_*, LOGITS and HIDDEN_LOSS_GIB are fitted (non-negative least squares) to the peaks measured on an H200
(repro/calibration/H200.yaml: 1.1B and 1.5B Llamas, LoRA and full, both loss paths, 6 x 2048 tokens, no
checkpointing), and reproduce each of the eight within 2.5% (tests/test_plan.py; the table is in docs/preflight.md).
Checkpointing, micro-batch 1, 8-bit weights and 13B-70B shapes are extrapolations from that fit.
The allocator's peak is what torch reports; OVERHEAD_GIB (CUDA context, allocator fragmentation) is added when
the estimate is held against a GPU.
- generation (vLLM): weights at 2 bytes per parameter split over the tensor-parallel GPUs, the KV cache of one
  full-context sequence, and the same overhead, against vLLM's default 90% of the GPU.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from repro.config import Training

GIB = 2 ** 30
OVERHEAD_GIB = 1.5
VLLM_MEMORY_UTILIZATION = 0.9
# fitted to the H200 peaks (bytes; see the module docstring)
ACT_HIDDEN, ACT_INTERMEDIATE, ACT_FP32_RESIDUAL = 24.19, 9.152, 5.335
LOGITS = 4.368
HIDDEN_LOSS_GIB = 0.570


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


def training_gib(arch: Arch, training, tokens_per_sequence: int, sequences: int,
                 hidden_loss: bool | None = None) -> dict[str, float]:
    """Peak allocated memory of one training process on one GPU, by part (GiB; `total` excludes OVERHEAD_GIB).
    `hidden_loss`: the chunked hidden-state loss (default: the config's `cut.from_hidden`)."""
    hidden_loss = training.cut.from_hidden if hidden_loss is None else hidden_loss
    kbit = training.load_in_8bit or training.load_in_4bit
    weights_bytes = BYTES[training.weights_dtype if training.weights_dtype != "auto" else training.precision]
    if training.finetune == "full":
        base = arch.params * 4
        trainable, per_trainable = arch.params, 12
    else:
        linear = 1 if training.load_in_8bit else 0.5 if training.load_in_4bit else weights_bytes
        base = arch.linear_params * linear + arch.embedding_params * (4 if kbit else weights_bytes)
        trainable = arch.layers * sum(training.lora.r * sum(arch.module_shape(t)) for t in training.lora.targets)
        per_trainable = 16
    tokens = tokens_per_sequence * sequences
    fp32_residual = training.finetune == "full"
    layer = tokens * (ACT_HIDDEN * arch.hidden + ACT_INTERMEDIATE * arch.intermediate
                      + (ACT_FP32_RESIDUAL * arch.hidden if fp32_residual else 0))
    if training.gradient_checkpointing:
        activations = tokens * arch.hidden * (4 if fp32_residual else 2) * arch.layers + layer
    else:
        activations = layer * arch.layers
    loss = HIDDEN_LOSS_GIB * GIB if hidden_loss else tokens * arch.vocab * LOGITS
    parts = {"weights": base / GIB, "trainable_and_optimiser": trainable * per_trainable / GIB,
             "activations": activations / GIB, "loss": loss / GIB}
    return {**parts, "total": sum(parts.values())}


def generation_gib(arch: Arch, context: int, tensor_parallel: int) -> dict[str, float]:
    """Per GPU of a vLLM engine: weights at 2 bytes over the tensor-parallel GPUs and one full-context sequence."""
    weights = arch.params * 2 / tensor_parallel
    kv_cache = 2 * arch.layers * arch.kv_heads * arch.head_dim * 2 * context / tensor_parallel
    parts = {"weights": weights / GIB, "kv_cache_one_sequence": kv_cache / GIB, "overhead": OVERHEAD_GIB}
    return {**parts, "total": sum(parts.values())}


def memory_provenance(training) -> str:
    """Whether a training estimate sits inside the measured configurations or extrapolates from them."""
    beyond = [name for name, on in (("gradient checkpointing", training.gradient_checkpointing),
                                    ("8-bit weights", training.load_in_8bit), ("4-bit weights", training.load_in_4bit))
              if on]
    fit = "estimate fitted to 8 peaks measured on an H200 (within 2.5%)"
    return f"{fit}; extrapolated to {', '.join(beyond)}" if beyond else f"{fit}; same kind of configuration"


def measured_estimate(entry: dict) -> float:
    """The estimate for one measured peak of a calibration file (its `arch`, fine-tuning, loss path, sequences
    and tokens), in GiB, to hold against its `peak_gib`."""
    training = Training(finetune=entry["finetune"], precision="bf16", weights_dtype=entry.get("weights_dtype", "auto"),
                        gradient_checkpointing=entry.get("checkpointing", False),
                        cut={"from_hidden": entry["loss"] == "hidden"})
    return training_gib(Arch(*entry["arch"]), training, entry["tokens"], entry["rows"])["total"]
