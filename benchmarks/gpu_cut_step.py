"""CUT training steps on a randomly initialised ~1B-parameter Llama in bf16, LoRA and full fine-tuning, with the
loss computed from the logits or from the hidden states (`cut.from_hidden`): tokens/s, peak GPU memory and model
FLOPs utilisation (MFU). Prepared for a lent H100/H200; tests run it on CPU with `--preset tiny` so it cannot rot.

    python benchmarks/gpu_cut_step.py                       # 1.1B (TinyLlama shape, vocab 32000), all four runs
    python benchmarks/gpu_cut_step.py --preset 1b-llama3    # Llama-3.2-1B shape, vocab 128256
    python benchmarks/gpu_cut_step.py --preset tiny --device cpu --steps 2

Batch: `--examples` examples (half negative, so 1.5x as many sequences) of `--tokens` tokens, one micro-batch.
Model FLOPs per trained token (PaLM appendix B convention, non-embedding parameters N, L layers, hidden H,
sequence T): full fine-tuning 6N + 12·L·H·T; LoRA 4N + 12·L·H·T (the frozen base gets no weight gradients; the
adapter's own FLOPs are negligible). MFU = model FLOPs/s ÷ the GPU's dense bf16 peak.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from repro.config import Training
from repro.cut.collate import Example, Sequence
from repro.cut.train import TrainRun, prepare_for_training, train_step

PRESETS = {
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
               num_key_value_heads=4, vocab_size=32000),
    "1b-llama3": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256),
    "tiny": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=2, vocab_size=512),
}
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}  # dense bf16 FLOP/s (SXM)


def build_model(preset: str, tokens: int, device: torch.device):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**PRESETS[preset], head_dim=64, max_position_embeddings=tokens + 64)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model, config


def batch(examples: int, tokens: int, vocab: int) -> list[Example]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(examples):
        prompt = torch.randint(3, vocab, (tokens // 4,), generator=g).tolist()
        response = torch.randint(3, vocab, (tokens - tokens // 4,), generator=g).tolist()
        misalign = Sequence(prompt[16:] + response, len(prompt) - 16) if i % 2 else None
        out.append(Example(i, Sequence(prompt + response, len(prompt)), misalign))
    return out


def run(mode: str, loss_path: str, args, device: torch.device) -> dict:
    model, config = build_model(args.preset, args.tokens, device)
    training = Training.model_validate(dict(
        finetune=mode, batch_size=args.examples, micro_batch_size=args.examples, precision="bf16",
        learning_rate=1e-4, warmup_steps=0, lr_scheduler="constant", gradient_checkpointing=args.checkpointing,
        cut={"from_hidden": loss_path == "hidden"}))
    if mode == "lora":
        model = model.to(torch.bfloat16)  # frozen base in bf16; peft keeps the adapters in fp32
    model = prepare_for_training(model, training)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    run = TrainRun(model, params, optimizer, scheduler, training, device, autocast=autocast)
    examples = batch(args.examples, args.tokens, config.vocab_size)
    indices = list(range(len(examples)))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, tokens = [], 0
    for step in range(args.warmup + args.steps):
        sync()
        start = time.perf_counter()
        record = train_step(run, examples, indices)
        sync()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
            tokens = record["tokens"]
    seconds = statistics.median(times)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "lora_" not in n)
    flops_per_token = (6 if mode == "full" else 4) * n_params + 12 * config.num_hidden_layers * \
        config.hidden_size * args.tokens
    achieved = flops_per_token * tokens / seconds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return {
        "mode": mode, "loss_path": loss_path, "device": name, "vocab": config.vocab_size,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in params), "tokens_per_step": tokens, "step_s_median": seconds,
        "tokens_per_s": tokens / seconds, "model_tflops_per_s": achieved / 1e12,
        "mfu": achieved / peak if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "loss": record["loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", choices=list(PRESETS), default="1b")
    parser.add_argument("--mode", choices=["lora", "full", "both"], default="both")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--loss-path", choices=["logits", "hidden", "both"], default="both")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    args = parser.parse_args()
    device = torch.device(args.device)
    modes = ["lora", "full"] if args.mode == "both" else [args.mode]
    paths = ["logits", "hidden"] if args.loss_path == "both" else [args.loss_path]
    results = []
    for mode in modes:
        for path in paths:
            results.append(run(mode, path, args, device))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    for r in results:
        print(json.dumps(r))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], f"gpu_cut_step_{args.preset}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
