"""The paper's bill, measured at the paper's shapes on one GPU, written as a calibration file for `repro plan`.

    python benchmarks/gpu_paper_step.py                          # LLaMA-2-13B shape on an H100/H200 (~4 min)
    python benchmarks/gpu_paper_step.py --preset tiny --device cpu --steps 1   # the CPU preset CI runs

Weights are random (throughput does not depend on them), so nothing is downloaded. Measured, each a median of
`--steps` steps after one warm-up:
- `train_lora[_checkpointing]`: the CUT step and a plain likelihood step on the same rows (Align-N sequences;
  CUT adds each negative's Misalign sequence) at the paper's shape: LoRA r16 on gate/up/down over fp16 base
  weights under bf16 autocast, micro-batch 1, batch 8, examples of real Shepherd lengths
  (benchmarks/data/shepherd_lengths.json, from `repro data tokenize`), gradient checkpointing off and on; MFU
  counts 4N + 12·L·H·T model FLOPs per trained token; peak memory per configuration.
- `sft`: TRL's SFTTrainer on the same Align-N rows (the peer a TRL user would compare with), if TRL is there.
- `8bit`: the same step on a `--slice-layers` slice of the model, fp16 base against bitsandbytes 8-bit base
  (the paper's training precision): the ratio is the factor the planner applies (CUDA with bitsandbytes only).
- `score`: forward-only at the suite's context lengths (bf16 weights, batches of `--score-batch`), MFU at 2N.
- `decode`: greedy decoding at batch 16 (bf16 weights): new tokens/s, and the share of the memory bandwidth
  that reading the weights once per step implies.
Writes $OUT/<GPU>.yaml (the repository's calibration file for that GPU with these measurements added) and
$OUT/gpu_paper_step.json. Copy the YAML to repro/calibration/ to make `repro plan` use it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml

from repro.config import Training
from repro.cut.collate import Example, Sequence
from repro.cut.train import TrainRun, prepare_for_training, train_step

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {  # layers, hidden, intermediate, heads, kv heads, head_dim, vocab
    "13b": dict(num_hidden_layers=40, hidden_size=5120, intermediate_size=13824, num_attention_heads=40,
                num_key_value_heads=40, head_dim=128, vocab_size=32000),
    "tiny": dict(num_hidden_layers=2, hidden_size=128, intermediate_size=256, num_attention_heads=2,
                 num_key_value_heads=2, head_dim=64, vocab_size=512),
}
PEAK = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12}  # dense bf16 FLOP/s
BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.04e12, "L40S": 0.864e12}  # bytes/s
SCORE_LENGTHS = {"mmlu": 640, "hellaswag": 900, "arc_challenge": 1100}  # contexts at the paper's shots (tokens)


def model_config(preset: str, layers: int | None = None):
    from transformers import LlamaConfig

    shape = dict(PRESETS[preset])
    if layers:
        shape["num_hidden_layers"] = layers
    return LlamaConfig(**shape, max_position_embeddings=4096)


def build(preset: str, device, dtype, layers: int | None = None):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(model_config(preset, layers)).to(dtype)
    return model


def examples(count: int, vocab: int, seed: int, scale: float = 1.0) -> list[Example]:
    """CUT examples with real Shepherd lengths (scaled down for the CPU preset) and random tokens."""
    lengths = json.loads((ROOT / "benchmarks/data/shepherd_lengths.json").read_text())["lengths"]
    rng = random.Random(seed)
    out = []
    for i, (n, prompt, mis, mis_prompt) in enumerate(rng.sample(lengths, count)):
        n, prompt, mis, mis_prompt = (max(2, int(x * scale)) for x in (n, prompt, mis, mis_prompt))
        response = [rng.randrange(3, vocab) for _ in range(n - prompt)]
        first = Sequence([rng.randrange(3, vocab) for _ in range(prompt)] + response, prompt)
        misalign = Sequence([rng.randrange(3, vocab) for _ in range(mis - len(response))] + response,
                            mis - len(response)) if mis > len(response) else None
        out.append(Example(i, first, misalign))
    return out


def plain(batch: list[Example]) -> list[Example]:
    """The same rows as a likelihood step: no Misalign sequence."""
    return [Example(e.source_index, e.first, None) for e in batch]


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def time_steps(model, training: Training, batches: list[list[Example]], device, autocast) -> dict:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    run = TrainRun(model, params, optimizer, scheduler, training, device, autocast=autocast)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, tokens = [], []
    for step, batch in enumerate(batches):
        sync(device)
        start = time.perf_counter()
        record = train_step(run, batch, list(range(len(batch))))
        sync(device)
        if step:  # the first is a warm-up
            times.append(time.perf_counter() - start)
            tokens.append(record["tokens"])
    seconds = statistics.median(times)
    return {"step_s": seconds, "tokens_per_step": statistics.median(tokens),
            "tokens_per_s": statistics.median(t / s for t, s in zip(tokens, times)), "peak_gib": peak_gib(device),
            "longest_rows": max(1 + (e.misalign is not None) for b in batches for e in b),
            "longest_tokens": max(len(e.first.ids) for b in batches for e in b)}


def model_flops_per_token(config, n_params: int, tokens_per_sequence: float, lora: bool = True) -> float:
    return (4 if lora else 6) * n_params + 12 * config.num_hidden_layers * config.hidden_size * tokens_per_sequence


def non_embedding_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters()
               if "embed_tokens" not in n and "lm_head" not in n and "lora_" not in n)


def measure_steps(args, device, autocast, peak) -> list[dict]:
    def training(ckpt: bool) -> Training:
        return Training(precision="bf16" if device.type == "cuda" else "fp32", weights_dtype="fp16",
                        gradient_checkpointing=ckpt, batch_size=8, micro_batch_size=1)


    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = prepare_for_training(build(args.preset, device, dtype), training(False))
    config = model.get_base_model().config
    n = non_embedding_params(model)
    batches = [examples(8, config.vocab_size, seed, args.scale) for seed in range(args.steps + 1)]
    results = []
    for ckpt in (False, True):
        base = model.get_base_model()
        if ckpt:
            base.gradient_checkpointing_enable()
            base.enable_input_require_grads()
        for objective, rows in (("cut", batches), ("likelihood", [plain(b) for b in batches])):
            r = time_steps(model, training(ckpt), rows, device, autocast)
            mean_len = r["tokens_per_step"] / sum(1 + (e.misalign is not None) for e in rows[0])
            r.update(objective=objective, checkpointing=ckpt,
                     mfu=model_flops_per_token(config, n, mean_len) * r["tokens_per_s"] / peak if peak else None)
            results.append(r)
            print(json.dumps({"phase": "step", **r}), flush=True)
    del model
    return results


def pad_only_tokenizer():
    """The rows are token ids already: SFTTrainer's collator needs a tokenizer only for its pad id."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(WordLevel({"<pad>": 0, "<unk>": 1, "</s>": 2}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")


def measure_sft(args, device, peak) -> dict | None:
    try:
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import TrainerCallback
        from trl import SFTConfig, SFTTrainer
    except ImportError as err:
        print(json.dumps({"phase": "sft", "skipped": f"{err}"}), flush=True)
        return None
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = build(args.preset, device, dtype)
    vocab = model.config.vocab_size
    rows = [e.first for b in range(args.steps + 1) for e in examples(8, vocab, b, args.scale)]
    data = Dataset.from_list([{"input_ids": s.ids, "labels": s.labels()} for s in rows])
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            sync(device)
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            sync(device)
            times.append(time.perf_counter() - self.start)

    settings = SFTConfig(output_dir=os.path.join(os.environ.get("TMPDIR", "/tmp"), "sft"), max_steps=args.steps + 1,
                         per_device_train_batch_size=1, gradient_accumulation_steps=8, learning_rate=1e-5,
                         bf16=device.type == "cuda", gradient_checkpointing=True, report_to=[], save_strategy="no",
                         logging_steps=1000, dataset_kwargs={"skip_prepare_dataset": True},
                         use_cpu=device.type == "cpu", max_length=None,
                         dataloader_num_workers=0)
    lora = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.05, target_modules=["gate_proj", "up_proj", "down_proj"],
                      task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=settings, train_dataset=data, peft_config=lora,
                         processing_class=pad_only_tokenizer(), callbacks=[Clock()])
    trainer.train()
    tokens = sum(len(s.ids) for s in rows) / (args.steps + 1)
    seconds = statistics.median(times[1:]) if len(times) > 1 else times[0]
    n = non_embedding_params(trainer.model)
    result = {"phase": "sft", "checkpointing": True, "step_s": seconds, "tokens_per_s": tokens / seconds,
              "mfu": model_flops_per_token(model.config, n, tokens / 8) * tokens / seconds / peak if peak else None}
    print(json.dumps(result), flush=True)
    del trainer, model
    return result


def measure_8bit(args, device, autocast, peak) -> dict | None:
    if device.type != "cuda":
        print(json.dumps({"phase": "8bit", "skipped": "needs CUDA"}), flush=True)
        return None
    try:
        import bitsandbytes  # noqa: F401
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    except ImportError as err:
        print(json.dumps({"phase": "8bit", "skipped": f"{err}"}), flush=True)
        return None
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "slice"
    build(args.preset, "cpu", torch.float16, args.slice_layers).save_pretrained(folder)
    times = {}
    for eight in (False, True):
        training = Training(precision="bf16", weights_dtype="fp16", gradient_checkpointing=True, load_in_8bit=eight,
                            batch_size=8, micro_batch_size=1)
        kwargs = {"dtype": torch.float16, "device_map": {"": device}}
        if eight:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        model = prepare_for_training(AutoModelForCausalLM.from_pretrained(folder, **kwargs), training)
        batches = [examples(8, model.config.vocab_size, seed) for seed in range(args.steps + 1)]
        times["8bit" if eight else "fp16"] = time_steps(model, training, batches, device, autocast)
        del model
        torch.cuda.empty_cache()
    result = {"phase": "8bit", "layers": args.slice_layers, "fp16": times["fp16"], "8bit": times["8bit"],
              "factor": times["fp16"]["step_s"] / times["8bit"]["step_s"]}
    print(json.dumps(result), flush=True)
    return result


def measure_score(args, device, peak) -> dict:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build(args.preset, device, dtype).eval()
    n = non_embedding_params(model)
    vocab, rows = model.config.vocab_size, []
    for task, length in SCORE_LENGTHS.items():
        length = max(8, int(length * args.scale))
        ids = torch.randint(3, vocab, (args.score_batch, length), device=device)
        times = []
        with torch.no_grad():
            for step in range(args.steps + 1):
                sync(device)
                start = time.perf_counter()
                model(input_ids=ids, use_cache=False).logits.float().log_softmax(-1)
                sync(device)
                if step:
                    times.append(time.perf_counter() - start)
        tps = ids.numel() / statistics.median(times)
        rows.append({"task": task, "tokens": length, "tokens_per_s": tps,
                     "mfu": (2 * n + 4 * model.config.num_hidden_layers * model.config.hidden_size * length) * tps
                     / peak if peak else None})
    result = {"phase": "score", "rows": rows, "mfu": statistics.median(r["mfu"] for r in rows) if peak else None}
    print(json.dumps(result), flush=True)
    del model
    return result


def measure_decode(args, device, bandwidth) -> dict:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build(args.preset, device, dtype).eval()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    prompts = torch.randint(3, model.config.vocab_size, (16, 82), device=device)
    new = max(4, int(args.new_tokens * args.scale))
    times = []
    with torch.no_grad():
        for step in range(2):
            sync(device)
            start = time.perf_counter()
            model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, pad_token_id=0)
            sync(device)
            if step:
                times.append(time.perf_counter() - start)
    tps = 16 * new / times[0]
    result = {"phase": "decode", "batch": 16, "new_tokens": new, "tokens_per_s": tps,
              "bandwidth_efficiency": (tps / 16) * weights / bandwidth if bandwidth else None}
    print(json.dumps(result), flush=True)
    del model
    return result


def calibration_file(gpu: str, results: dict, where: str, preset: str) -> dict:
    """The repository's calibration file for this GPU (or a new one), with the measurements added."""
    path = ROOT / "repro/calibration" / f"{gpu}.yaml"
    raw = yaml.safe_load(path.read_text()) if path.is_file() else {}
    if "extrapolate_from" in raw or not raw:
        donor = yaml.safe_load((ROOT / "repro/calibration/H200.yaml").read_text())
        raw = {**donor, **{k: v for k, v in raw.items() if k != "extrapolate_from"}, "gpu": gpu, "memory": []}
    when = datetime.date.today().isoformat()
    steps = {(r["objective"], r["checkpointing"]): r for r in results["steps"]}
    shape = "LLaMA-2-13B shape, LoRA r16 gate/up/down over fp16 weights, bf16 autocast, micro-batch 1, batch 8, " \
            "real Shepherd lengths"
    for ckpt, key in ((False, "train_lora"), (True, "train_lora_checkpointing")):
        cut = steps[("cut", ckpt)]
        raw["phases"][key] = {"mfu": round(cut["mfu"], 4), "measured": (
            f"{when}, {where}: CUT step, {shape}, checkpointing {'on' if ckpt else 'off'}; the likelihood step on "
            f"the same rows {steps[('likelihood', ckpt)]['mfu']:.3f}")}
    if results.get("8bit"):
        factor = results["8bit"]["factor"]
        raw["factors"]["8bit"] = {"factor": round(factor, 4), "measured": (
            f"{when}, {where}: step time of a {results['8bit']['layers']}-layer 13B slice, fp16 over bitsandbytes "
            "8-bit base weights (checkpointing on)")}
        raw["phases"]["train_lora_checkpointing_8bit"] = {"mfu": round(steps[("cut", True)]["mfu"] * factor, 4),
                                                          "measured": f"{when}, {where}: train_lora_checkpointing "
                                                                      f"x the 8-bit slice factor {factor:.3f}"}
    raw["phases"]["score"] = {"mfu": round(results["score"]["mfu"], 4), "measured": (
        f"{when}, {where}: forward-only, bf16 weights, batches of {results['score_batch']} contexts of "
        f"{', '.join(str(r['tokens']) for r in results['score']['rows'])} tokens")}
    raw["phases"]["decode"] = {"bandwidth_efficiency": round(results["decode"]["bandwidth_efficiency"], 4),
                               "measured": f"{when}, {where}: greedy, batch 16, {results['decode']['new_tokens']} "
                                           f"new tokens, bf16 weights"}
    arch = [PRESETS[preset][k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size",
                                         "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size")]
    for r in results["steps"]:
        if r["objective"] == "cut" and r["peak_gib"]:
            raw.setdefault("memory", []).append({
                "arch": arch, "finetune": "lora", "loss": "hidden", "weights_dtype": "fp16",
                "checkpointing": r["checkpointing"], "rows": r["longest_rows"], "tokens": r["longest_tokens"],
                "peak_gib": round(r["peak_gib"], 2), "measured": f"{when}, {where}"})
    return raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", choices=list(PRESETS), default="13b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--scale", type=float, default=1.0, help="scale the real lengths (the CPU preset: 0.1)")
    parser.add_argument("--slice-layers", type=int, default=4)
    parser.add_argument("--score-batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--skip", nargs="*", default=[], choices=["sft", "8bit", "score", "decode"])
    parser.add_argument("--as-gpu", choices=list(PEAK), help="write the calibration file as this GPU's (tests)")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    gpu = args.as_gpu or next((k for k in PEAK if k in name), None)
    peak, bandwidth = PEAK.get(gpu), BANDWIDTH.get(gpu)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    started = time.perf_counter()
    results = {"device": name, "preset": args.preset, "score_batch": args.score_batch,
               "steps": measure_steps(args, device, autocast, peak)}
    results["sft"] = None if "sft" in args.skip else measure_sft(args, device, peak)
    results["8bit"] = None if "8bit" in args.skip else measure_8bit(args, device, autocast, peak)
    results["score"] = None if "score" in args.skip else measure_score(args, device, peak)
    results["decode"] = None if "decode" in args.skip else measure_decode(args, device, bandwidth)
    results["seconds"] = time.perf_counter() - started
    out = Path(os.environ.get("OUT", "gpu_out"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_paper_step.json").write_text(json.dumps(results, indent=2))
    if gpu and results["score"] and results["decode"]:
        where = f"{name}, benchmarks/gpu_paper_step.py --preset {args.preset}"
        (out / f"{gpu}.yaml").write_text(yaml.safe_dump(calibration_file(gpu, results, where, args.preset),
                                                        sort_keys=False, width=1000))
    print(json.dumps({"seconds": results["seconds"], "written": sorted(p.name for p in out.iterdir())}))


if __name__ == "__main__":
    main()
