"""Correctness of the CUT loss on a GPU, before any timing is trusted: `cut_loss_from_hidden` and `cut_loss` (logits
path) on CUDA in fp32 and bf16 against a float64 reference, at small random shapes and at Llama 3's vocabulary; then
one trainer forward + backward (`forward_cut`) of a randomly initialised Llama on CUDA with bf16 autocast, hidden
path vs logits path, LoRA and full fine-tuning. Prints ‖out − ref‖ / ‖ref‖ for the loss and every gradient and
exits 1 if one is over its bound (fp32 1e-4, bf16 3e-2; the bf16 bound is loose because the two paths round at
different places). Prepared for a lent GPU; `--device cpu --small` runs it here.

    python benchmarks/gpu_check_loss.py [--device cuda] [--small]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from repro.cut.loss import cut_loss, cut_loss_from_hidden  # noqa: E402

from helpers import naive_cut_loss  # noqa: E402

BOUND = {torch.float32: 1e-4, torch.bfloat16: 3e-2}
SETTING = dict(threshold=1.1, alpha=0.5, gamma=1.0, combine="mean")


def relative(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double().cpu(), ref.double().cpu()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def loss_case(vocab: int, length: int, d: int, device: str, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    negative = torch.tensor([True, False, True, True])  # responses: the last 3/4 of a row, then 3 pads
    targets, mis_targets = torch.full((4, length), -100), torch.full((3, length - 5), -100)
    k = 0
    for i, is_negative in enumerate(negative.tolist()):
        response = torch.randint(0, vocab, (length * 3 // 4 - 3,), generator=g)
        targets[i, length - 3 - len(response):length - 3] = response
        if is_negative:
            mis_targets[k, length - 8 - len(response):length - 8] = response
            k += 1
    leaves64 = [torch.randn(4, length, d, generator=g, dtype=torch.float64),
                torch.randn(3, length - 5, d, generator=g, dtype=torch.float64),
                torch.randn(vocab, d, generator=g, dtype=torch.float64) * 2 / d ** 0.5]
    targets, mis_targets, negative = targets.to(device), mis_targets.to(device), negative.to(device)

    def run(path, dtype):
        leaves = [t.to(device, dtype).clone().requires_grad_() for t in leaves64]
        hidden, mis_hidden, weight = leaves
        if path == "reference":
            loss = naive_cut_loss(hidden @ weight.t(), targets, mis_hidden @ weight.t(), mis_targets, negative,
                                  **SETTING)
        elif path == "logits":
            loss = cut_loss(hidden @ weight.t(), targets, mis_hidden @ weight.t(), mis_targets, negative,
                            **SETTING).loss
        else:
            loss = cut_loss_from_hidden(hidden, weight, targets, mis_hidden, mis_targets, negative, **SETTING).loss
        loss.backward()
        return [loss.detach()] + [t.grad for t in leaves]

    reference = run("reference", torch.float64)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for path in ("logits", "hidden"):
            errors = [relative(a, b) for a, b in zip(run(path, dtype), reference)]
            rows.append(dict(check="loss", vocab=vocab, length=length, d=d, dtype=str(dtype)[6:], path=path,
                             **dict(zip(["loss", "grad_hidden", "grad_misalign_hidden", "grad_weight"], errors)),
                             bound=BOUND[dtype]))
    return rows


def training_case(finetune: str, device: str, small: bool) -> dict:
    from contextlib import nullcontext

    from transformers import LlamaConfig, LlamaForCausalLM

    from repro.config import Training
    from repro.cut.collate import Example, Sequence, collate
    from repro.cut.hidden import output_layer
    from repro.cut.train import forward_cut, prepare_for_training

    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=2, vocab_size=512) if small else \
        dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=4, num_attention_heads=32,
             num_key_value_heads=8, vocab_size=128256)
    length = 64 if small else 1024
    g = torch.Generator().manual_seed(3)
    examples = []
    for i in range(4):
        prompt = torch.randint(3, shape["vocab_size"], (length // 4,), generator=g).tolist()
        response = torch.randint(3, shape["vocab_size"], (length - length // 4,), generator=g).tolist()
        misalign = Sequence(prompt[8:] + response, len(prompt) - 8) if i % 2 else None
        examples.append(Example(i, Sequence(prompt + response, len(prompt)), misalign))
    batch = collate(examples, 0)
    on_cuda = device == "cuda"
    results = {}
    for from_hidden in (True, False):
        torch.manual_seed(0)
        config = LlamaConfig(**shape, head_dim=64 if not small else 32, max_position_embeddings=length + 16)
        with torch.device(device):
            model = LlamaForCausalLM(config)
        training = Training(finetune=finetune, precision="bf16" if on_cuda else "fp32",
                            cut={"threshold": 1.1, "alpha": 0.5, "from_hidden": from_hidden})
        model = prepare_for_training(model, training)
        assert output_layer(model) is not None
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda else nullcontext()
        out = forward_cut(model, batch.to(device), training, autocast)
        out.loss.backward()
        results[from_hidden] = [out.loss.detach()] + [p.grad for _, p in sorted(model.named_parameters())
                                                      if p.grad is not None]
        del model
    errors = [relative(a, b) for a, b in zip(results[True], results[False])]
    bound = BOUND[torch.bfloat16 if on_cuda else torch.float32]
    return dict(check="training_step", finetune=finetune, vocab=shape["vocab_size"], length=length,
                loss=errors[0], grads_worst=max(errors[1:]), grads_median=sorted(errors[1:])[len(errors[1:]) // 2],
                n_grads=len(errors) - 1, bound=bound)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="small shapes only (CPU)")
    args = parser.parse_args()
    rows = []
    shapes = [(101, 33, 16)] + ([] if args.small else [(32000, 257, 256), (128256, 1024, 2048)])
    for seed, (vocab, length, d) in enumerate(shapes):
        rows += loss_case(vocab, length, d, args.device, seed)
    rows += [training_case(f, args.device, args.small) for f in ("lora", "full")]
    failed = False
    for row in rows:
        errors = [v for k, v in row.items() if k.startswith(("loss", "grad"))]
        row["ok"] = max(errors) <= row["bound"]
        failed |= not row["ok"]
        print(json.dumps(row), flush=True)
    print("all within bounds" if not failed else "SOME CHECKS FAILED")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
