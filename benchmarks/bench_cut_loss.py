"""cut_loss forward + backward against the naive released algorithm, vocab 32000, 2048 tokens, a batch of one
positive and one negative (response = the last 1536 tokens). Prints median time and peak memory beyond the inputs
(gradient buffers included) for both, and their ratios.

    python benchmarks/bench_cut_loss.py [--vocab 32000] [--tokens 2048] [--repeats 5] [--device cpu|cuda]

CPU memory is the process's peak RSS (VmHWM) minus its RSS after the inputs exist, each variant in a fresh
subprocess; CUDA memory is torch.cuda.max_memory_allocated minus the allocated bytes before the step.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import peak_bytes_beyond_now  # noqa: E402
from naive_released import naive_released_loss  # noqa: E402

from repro.cut.loss import cut_loss  # noqa: E402

THRESHOLD, ALPHA = 1.1, 1.0


def make_inputs(variant: str, vocab: int, tokens: int, device: str):
    g = torch.Generator().manual_seed(0)
    prompt = tokens // 4
    response = torch.randint(0, vocab, (tokens - prompt,), generator=g)
    labels = torch.full((2, tokens), -100)
    labels[:, prompt:] = response  # example 0 positive, example 1 negative, same response length
    negative = torch.tensor([False, True])
    if variant == "naive":  # the released layout: 2 first rows + 2 Misalign rows (one all padding)
        logits = torch.randn(4, tokens, vocab, generator=g).to(device).requires_grad_()
        labels_neg = torch.full((2, tokens), -100)
        labels_neg[1, prompt - 7:tokens - 7] = response  # Misalign prompt is shorter (no judgment)
        return logits, labels.to(device), labels_neg.to(device), negative.to(device)
    targets = torch.cat([labels[:, 1:], torch.full((2, 1), -100)], 1)
    mis = torch.full((1, tokens), -100)
    mis[0, prompt - 8:tokens - 8] = response
    logits = torch.randn(2, tokens, vocab, generator=g).to(device).requires_grad_()
    mis_logits = torch.randn(1, tokens, vocab, generator=g).to(device).requires_grad_()
    return logits, targets.to(device), mis_logits, mis.to(device), negative.to(device)


def step(variant: str, inputs) -> None:
    if variant == "naive":
        logits, labels, labels_neg, negative = inputs
        naive_released_loss(logits, labels, labels_neg, negative, THRESHOLD, ALPHA).backward()
    else:
        logits, targets, mis_logits, mis, negative = inputs
        cut_loss(logits, targets, mis_logits, mis, negative, threshold=THRESHOLD, alpha=ALPHA).loss.backward()



def measure_memory(variant: str, vocab: int, tokens: int, device: str) -> int:
    """Run in a fresh process: bytes allocated at peak beyond the inputs."""
    inputs = make_inputs(variant, vocab, tokens, device)
    return peak_bytes_beyond_now(lambda: step(variant, inputs), device)


def measure_time(variant: str, vocab: int, tokens: int, device: str, repeats: int) -> float:
    inputs = make_inputs(variant, vocab, tokens, device)
    times = []
    for i in range(repeats + 1):
        for t in inputs:
            if isinstance(t, torch.Tensor) and t.grad is not None:
                t.grad = None
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step(variant, inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first run warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--memory-only", choices=["naive", "ours"])
    args = parser.parse_args()
    if args.memory_only:
        print(json.dumps({"bytes": measure_memory(args.memory_only, args.vocab, args.tokens, args.device)}))
        return
    result = {}
    for variant in ("naive", "ours"):
        child = subprocess.run([sys.executable, __file__, "--memory-only", variant, "--vocab", str(args.vocab),
                                "--tokens", str(args.tokens), "--device", args.device],
                               capture_output=True, text=True, check=True)
        memory = json.loads(child.stdout.strip().splitlines()[-1])["bytes"]
        seconds = measure_time(variant, args.vocab, args.tokens, args.device, args.repeats)
        result[variant] = (seconds, memory)
        print(f"{variant:6s} forward+backward median {seconds * 1000:8.1f} ms   peak beyond inputs "
              f"{memory / 2**30:6.2f} GiB")
    (t_naive, m_naive), (t_ours, m_ours) = result["naive"], result["ours"]
    print(f"speed-up {t_naive / t_ours:.2f}x   memory ratio ours/naive {m_ours / m_naive:.2f}   "
          f"(vocab {args.vocab}, {args.tokens} tokens, 1 positive + 1 negative, {args.device}, "
          f"median of {args.repeats})")


if __name__ == "__main__":
    main()
