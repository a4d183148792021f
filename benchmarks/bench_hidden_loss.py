"""The CUT loss from hidden states against the logits path, at today's vocabularies: Llama 3's 128,256 and Gemma's
256,000, hidden size 2048, one positive and one negative example (three sequences: two first rows and the
negative's Misalign row), the response being the last 3/4 of each sequence. Forward + backward of the output layer
and the loss. Prints median time and peak memory beyond the inputs of both paths, and their ratios.

    python benchmarks/bench_hidden_loss.py [--vocab 128256 256000] [--tokens 512] [--dim 2048] [--repeats 3]
                                           [--train-weight] [--device cpu|cuda]

logits path: logits = hidden @ weight.T for every position (as a model's output layer returns them), then
`cut_loss`. hidden path: `cut_loss_from_hidden`. The weight is frozen by default (LoRA, the paper's recipe);
`--train-weight` also computes its gradient (full fine-tuning). CPU memory is the peak RSS (VmHWM) minus the RSS once
the inputs exist, each path in a fresh process; CUDA memory is max_memory_allocated beyond the allocated inputs.
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

from repro.cut.loss import cut_loss, cut_loss_from_hidden  # noqa: E402

SETTINGS = dict(threshold=1.1, alpha=1.0)


def make_inputs(vocab: int, tokens: int, dim: int, train_weight: bool, device: str):
    g = torch.Generator().manual_seed(0)
    prompt = tokens // 4
    response = torch.randint(0, vocab, (tokens - prompt,), generator=g)
    targets = torch.full((2, tokens), -100)
    targets[:, prompt - 1:tokens - 1] = response  # example 0 positive, example 1 negative
    mis_targets = torch.full((1, tokens), -100)
    mis_targets[0, prompt - 9:tokens - 9] = response  # the Misalign prompt is shorter (no judgment)
    hidden = torch.randn(2, tokens, dim, generator=g).to(device).requires_grad_()
    mis_hidden = torch.randn(1, tokens, dim, generator=g).to(device).requires_grad_()
    weight = torch.randn(vocab, dim, generator=g).div_(dim ** 0.5).to(device).requires_grad_(train_weight)
    negative = torch.tensor([False, True]).to(device)
    return hidden, mis_hidden, weight, targets.to(device), mis_targets.to(device), negative


def step(path: str, inputs) -> None:
    hidden, mis_hidden, weight, targets, mis_targets, negative = inputs
    if path == "logits":
        out = cut_loss(hidden @ weight.t(), targets, mis_hidden @ weight.t(), mis_targets, negative, **SETTINGS)
    else:
        out = cut_loss_from_hidden(hidden, weight, targets, mis_hidden, mis_targets, negative, **SETTINGS)
    out.loss.backward()


def clear(inputs) -> None:
    for t in inputs[:3]:
        t.grad = None


def measure_memory(path: str, args) -> int:
    """In a fresh process: bytes at peak beyond the inputs (the gradients included)."""
    inputs = make_inputs(args.vocab[0], args.tokens, args.dim, args.train_weight, args.device)
    return peak_bytes_beyond_now(lambda: step(path, inputs), args.device)


def measure_time(path: str, vocab: int, args) -> float:
    inputs = make_inputs(vocab, args.tokens, args.dim, args.train_weight, args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    times = []
    for i in range(args.repeats + 1):
        clear(inputs)
        sync()
        start = time.perf_counter()
        step(path, inputs)
        sync()
        if i:  # the first run warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, nargs="+", default=[128256, 256000])
    parser.add_argument("--tokens", type=int, default=512, help="per sequence (2048 on a GPU)")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-weight", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--memory-only", choices=["logits", "hidden"])
    args = parser.parse_args()
    if args.memory_only:
        print(json.dumps({"bytes": measure_memory(args.memory_only, args)}))
        return
    for vocab in args.vocab:
        result = {}
        for path in ("logits", "hidden"):
            child = subprocess.run([sys.executable, __file__, "--memory-only", path, "--vocab", str(vocab),
                                    "--tokens", str(args.tokens), "--dim", str(args.dim), "--device", args.device]
                                   + (["--train-weight"] if args.train_weight else []),
                                   capture_output=True, text=True, check=True)
            memory = json.loads(child.stdout.strip().splitlines()[-1])["bytes"]
            result[path] = (measure_time(path, vocab, args), memory)
            print(f"V {vocab:6d}  {path:6s} path: forward+backward median {result[path][0]:7.2f} s   peak beyond "
                  f"inputs {memory / 2**30:6.2f} GiB", flush=True)
        (t_logits, m_logits), (t_hidden, m_hidden) = result["logits"], result["hidden"]
        weight = "trained" if args.train_weight else "frozen"
        print(f"V {vocab:6d}  hidden / logits: time {t_hidden / t_logits:.2f}x, memory {m_hidden / m_logits:.3f}x   "
              f"(d {args.dim}, {args.tokens} tokens x 3 sequences, weight {weight}, {args.device}, "
              f"median of {args.repeats})", flush=True)


if __name__ == "__main__":
    main()
