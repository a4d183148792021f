"""A CUT training step on a tiny Llama (2 layers, hidden 128, vocab 32000): tokens/s and peak memory of the
project's step (cut_loss; no Misalign row for positives) against the same step with the naive released loss and
layout (full fp32 softmax, an all-padding Misalign row for every positive).

    python benchmarks/bench_train_step.py [--examples 4] [--tokens 1024] [--repeats 5]

Each variant runs in a fresh process (memory = peak RSS beyond the RSS after model and batch exist).
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
from memory import proc_status_bytes  # noqa: E402
from naive_released import naive_released_loss  # noqa: E402

from repro.cut.collate import Example, Sequence, collate  # noqa: E402
from repro.cut.loss import cut_loss  # noqa: E402


def build(examples: int, tokens: int, vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=128, intermediate_size=256,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         head_dim=64, max_position_embeddings=tokens + 64))
    g = torch.Generator().manual_seed(1)
    batch = []
    for i in range(examples):  # alternate positives and negatives; prompt = a quarter of the tokens
        response = torch.randint(3, vocab, (tokens - tokens // 4,), generator=g).tolist()
        prompt = torch.randint(3, vocab, (tokens // 4,), generator=g).tolist()
        first = Sequence(prompt + response, len(prompt))
        misalign = Sequence(prompt[8:] + response, len(prompt) - 8) if i % 2 else None
        batch.append(Example(i, first, misalign))
    return model, batch


def ours_step(model, examples):
    batch = collate(examples, 0)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    n = len(examples)
    cut_loss(logits[:n], batch.targets, logits[n:], batch.misalign_targets, batch.negative, threshold=1.1,
             alpha=1.0).loss.backward()
    return int(sum(len(e.first.ids) + (len(e.misalign.ids) if e.misalign else 0) for e in examples))


def naive_step(model, examples):
    length = max(len(s.ids) for e in examples for s in (e.first, e.misalign) if s is not None)
    rows, labels, labels_neg = [], [], []
    for e in examples:
        rows.append(e.first.ids + [0] * (length - len(e.first.ids)))
        labels.append([-100] * e.first.n_masked + e.first.ids[e.first.n_masked:] + [-100] * (length - len(e.first.ids)))
    for e in examples:  # released: a Misalign row for every example, all padding for a positive
        m = e.misalign
        rows.append(m.ids + [0] * (length - len(m.ids)) if m else [0] * length)
        labels_neg.append([-100] * m.n_masked + m.ids[m.n_masked:] + [-100] * (length - len(m.ids)) if m
                          else [-100] * length)
    ids = torch.tensor(rows)
    mask = (torch.arange(length)[None] < torch.tensor(
        [len(e.first.ids) for e in examples] + [len(e.misalign.ids) if e.misalign else 0 for e in examples])[:, None])
    logits = model(input_ids=ids, attention_mask=mask.long()).logits
    negative = torch.tensor([e.misalign is not None for e in examples])
    naive_released_loss(logits, torch.tensor(labels), torch.tensor(labels_neg), negative, 1.1, 1.0).backward()
    return int(sum(len(e.first.ids) + (len(e.misalign.ids) if e.misalign else 0) for e in examples))


STEPS = {"naive": naive_step, "ours": ours_step}



def run_variant(variant: str, examples: int, tokens: int, vocab: int, repeats: int) -> dict:
    model, batch = build(examples, tokens, vocab)
    before = proc_status_bytes("VmRSS")
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        n_tokens = STEPS[variant](model, batch)
        if i:
            times.append(time.perf_counter() - start)
    return {"tokens_per_s": n_tokens / statistics.median(times), "peak_bytes": proc_status_bytes("VmHWM") - before}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variant", choices=list(STEPS))
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.examples, args.tokens, args.vocab, args.repeats)))
        return
    results = {}
    for variant in STEPS:
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--examples", str(args.examples),
                              "--tokens", str(args.tokens), "--vocab", str(args.vocab), "--repeats",
                              str(args.repeats)], capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{variant:6s} {results[variant]['tokens_per_s']:9.0f} tokens/s   peak beyond model and batch "
              f"{results[variant]['peak_bytes'] / 2**30:5.2f} GiB")
    print(f"tokens/s ratio ours/naive {results['ours']['tokens_per_s'] / results['naive']['tokens_per_s']:.2f}x   "
          f"memory ratio ours/naive {results['ours']['peak_bytes'] / results['naive']['peak_bytes']:.2f}   "
          f"({args.examples} examples, half negative, {args.tokens} tokens each, vocab {args.vocab}, "
          f"median of {args.repeats})")


if __name__ == "__main__":
    main()
