"""CUT training, as one readable recipe: setup, the step, checkpoints.

One process (CPU or one GPU):
    repro train --config config/paper.yaml --experiment cut-online-iter1 \
        --out runs/paper/experiments/cut-online-iter1/adapter
Several GPUs (the released runs used 8, micro-batch 1):
    torchrun --nproc_per_node=8 -m repro.cli train --config config/paper.yaml --experiment cut-online-iter1 --out ...

The gradient of an optimiser step is the mean of the per-example losses of its global batch (``batch_size``
examples), whatever the split into micro-batches, accumulation steps and processes: each micro-batch adds
``sum(loss_i) / n_global`` and processes sum their gradients (an all-reduce). With micro-batch 1 this is exactly the
released objective. The data order is a seeded permutation per epoch; a checkpoint holds the trainable weights,
the optimiser, the scheduler and the RNG states, so ``--resume`` continues exactly where a run stopped.
"""
from __future__ import annotations

import errno
import json
import math
import os
import random
import shutil
import subprocess
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from repro.config import Training
from repro.cut.collate import CutBatch, Example, collate, encode_instances, pad_id
from repro.cut.hidden import output_layer
from repro.cut.loss import CutLossOutput, cut_loss, cut_loss_from_hidden
from repro.cut.order import global_batch
from repro.cut.tracking import open_tracker
from repro.data import DataStore
from repro.data.objectives import INSTANCE_KINDS
from repro.data.tokenizer import load_tokenizer
from repro.io import follow_umask, keep_complete_lines, read_jsonl, sha256_file, write_json, write_text_atomic
from repro.models.load import base_signature, load_causal_lm, torch_dtype, with_adapter

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # transformers.TrainingArguments defaults (adamw_torch)
KEEP_CHECKPOINTS = 2  # released: save_total_limit=2


@dataclass
class TrainJob:
    base_model: str
    instances: Path
    out: Path
    training: Training
    checkpoints: Path | None = None  # default: <out>/../checkpoints (outside the output, which Snakemake may remove)
    device: str = "auto"
    resume: bool = False
    experiment: str = ""
    progress: bool = True
    tokenizer: str | None = None  # a tokenizer source (config `models.<m>.tokenizer`); None: the base model's own
    mirror: str | None = None  # data mirror the tokenizer source is read from (REPRO_DATA_MIRROR wins)


# ------------------------------------------------------------------------------------------------- setup

def rank_and_world() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank() if world > 1 else 0), world


def pick_device(requested: str, rank: int) -> torch.device:
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no GPU is available")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))


def training_dtype(training: Training, device: torch.device) -> torch.dtype:
    return torch_dtype(training.precision, device.type)


def load_model(base_model: str, training: Training, device: torch.device):
    from transformers import AutoModelForCausalLM

    if not (Path(base_model).is_dir() or "/" in base_model):
        raise FileNotFoundError(f"base model '{base_model}' is neither a local folder nor a hub id")
    compute = training_dtype(training, device)
    weights = compute if training.weights_dtype == "auto" else torch_dtype(training.weights_dtype, device.type)
    kwargs: dict = {"dtype": torch.float32 if training.finetune == "full" else weights}
    if training.load_in_8bit or training.load_in_4bit:
        if device.type != "cuda":
            raise RuntimeError("8-bit / 4-bit base weights need CUDA and bitsandbytes; set load_in_8bit: false on CPU")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=training.load_in_8bit,
                                                           load_in_4bit=training.load_in_4bit,
                                                           bnb_4bit_compute_dtype=compute)
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    except OSError as err:
        raise FileNotFoundError(f"cannot load base model '{base_model}': {err}") from None
    if "quantization_config" not in kwargs:
        model.to(device)
    return prepare_for_training(model, training)


def prepare_for_training(model, training: Training):
    """Gradient checkpointing, k-bit preparation and the LoRA wrapper (or nothing, for full fine-tuning)."""
    if training.load_in_8bit or training.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=training.gradient_checkpointing)
    elif training.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model.config.use_cache = False
    if training.finetune == "lora":
        from peft import LoraConfig, get_peft_model

        lora = training.lora
        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=list(lora.targets), bias=lora.bias,
                                                 task_type="CAUSAL_LM"))
    return model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:
        pass


# ------------------------------------------------------------------------------------------------- the step

# model types whose logits are exactly their output layer applied to the decoder's final hidden states
# (soft-capped for Gemma 2): the loss can then be computed from the hidden states (cut.from_hidden)
def forward_cut(model, batch: CutBatch, training: Training, autocast) -> CutLossOutput:
    cut = training.cut
    settings = dict(threshold=cut.threshold, alpha=cut.alpha, gamma=cut.gamma, combine=cut.combine,
                    use_l1=cut.use_l1, use_align_n_mle=cut.use_align_n_mle, detection=cut.detection,
                    target_weights=batch.target_weights)
    n_first = batch.targets.shape[0]
    layer = output_layer(model) if cut.from_hidden else None
    if layer is None:
        with autocast:
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        return cut_loss(logits[:n_first], batch.targets, logits[n_first:], batch.misalign_targets, batch.negative,
                        **settings)
    decoder, weight, bias, softcap = layer
    device_type = batch.input_ids.device.type
    with autocast:
        hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         use_cache=False).last_hidden_state
        # the output layer's matmuls run in the autocast dtype, as `model(...)` would run them
        matmul_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    return cut_loss_from_hidden(hidden[:n_first], weight, batch.targets, hidden[n_first:], batch.misalign_targets,
                                batch.negative, bias=bias, softcap=softcap, matmul_dtype=matmul_dtype, **settings)


def check_objective(instances: list[dict], objective: str, source) -> None:

    wrong = sorted({str(i.get("kind")) for i in instances} - INSTANCE_KINDS[objective])
    if wrong:
        raise ValueError(f"{source}: instances of kind {wrong} cannot train objective '{objective}' (it needs "
                         f"{sorted(INSTANCE_KINDS[objective])}); rebuild them with `repro data instances --objective "
                         f"{objective}`")


def plan_steps(n_examples: int, training: Training) -> tuple[int, int]:
    steps_per_epoch = math.ceil(n_examples / training.batch_size)
    total = steps_per_epoch * training.epochs
    if training.max_steps is not None:
        total = min(total, training.max_steps)
    return steps_per_epoch, total


def _all_reduce_gradients(params: list[torch.nn.Parameter]) -> None:
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)


@dataclass
class TrainRun:
    """What every optimiser step needs: the model and its trainable parameters, the optimiser and schedule, the
    settings, where the batches go and how they are padded, and this process's place among the others."""
    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: object
    training: Training
    device: torch.device
    pad_id: int = 0
    autocast: object = field(default_factory=nullcontext)
    rank: int = 0
    world: int = 1


def train_step(run: TrainRun, examples: list[Example], indices: list[int]) -> dict:
    """One optimiser step over the global batch `indices` (this process takes every world-th example)."""
    training, device = run.training, run.device
    mine = indices[run.rank::run.world]
    totals = {"loss": 0.0, "nll": 0.0, "ul": 0.0, "flagged": 0, "paired": 0, "tokens": 0, "negatives": 0}
    for start in range(0, len(mine), training.micro_batch_size):
        batch = collate([examples[i] for i in mine[start:start + training.micro_batch_size]], run.pad_id).to(device)
        out = forward_cut(run.model, batch, training, run.autocast)
        (out.per_example.sum() / len(indices)).backward()
        totals["loss"] += float(out.per_example.detach().sum())
        totals["nll"] += float(out.per_example_nll.sum())
        totals["ul"] += float(out.per_example_unlikelihood.sum())
        totals["flagged"] += out.flagged
        totals["paired"] += out.paired_tokens
        totals["tokens"] += batch.tokens
        totals["negatives"] += int(batch.negative.sum())
    if run.world > 1:
        _all_reduce_gradients(run.params)
        summed = torch.tensor([totals[k] for k in totals], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(summed)
        totals = dict(zip(totals, summed.tolist()))
    if not math.isfinite(totals["loss"]):
        raise FloatingPointError(f"the loss is {totals['loss']} (examples {indices}): stopping")
    grad_norm = (torch.nn.utils.clip_grad_norm_(run.params, training.max_grad_norm) if training.max_grad_norm
                 else torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in run.params if p.grad is not None])))
    lr = run.scheduler.get_last_lr()[0]
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    n = len(indices)
    return {"loss": totals["loss"] / n, "nll": totals["nll"] / n,
            "ul": totals["ul"] / totals["negatives"] if totals["negatives"] else 0.0,
            "flagged_rate": totals["flagged"] / totals["paired"] if totals["paired"] else 0.0,
            "lr": lr, "grad_norm": float(grad_norm), "examples": n, "tokens": int(totals["tokens"])}


# ------------------------------------------------------------------------------------------------- checkpoints

def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _fingerprint(job: TrainJob, n_examples: int) -> dict:
    return {"training": job.training.model_dump(exclude={"report_to"}), "base_model": str(job.base_model),
            "examples": n_examples, "instances_sha256": sha256_file(job.instances), "tokenizer": job.tokenizer}


def training_tokenizer(job: TrainJob):
    """The config's tokenizer source when the model names one (the tokens preflight checked), else the base
    model's own."""
    if job.tokenizer is None:
        return load_tokenizer(job.base_model)

    return load_tokenizer(job.tokenizer, DataStore.from_env(mirror=job.mirror))


def save_checkpoint(folder: Path, step: int, model, optimizer, scheduler, fingerprint: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {"step": step, "model": _trainable_state(model), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "fingerprint": fingerprint,
             "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                     "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}}
    tmp = folder / f".step-{step}.pt.part"
    try:
        torch.save(state, tmp)
    except RuntimeError as err:  # torch reports a failed write as "inline_container.cc: unexpected pos"
        tmp.unlink(missing_ok=True)
        full = shutil.disk_usage(folder).free < (64 << 20)
        raise OSError(errno.ENOSPC if full else errno.EIO, f"could not write the checkpoint ({str(err)[:120]})",
                      str(tmp)) from None
    os.replace(tmp, folder / f"step-{step}.pt")
    for old in _checkpoint_files(folder)[:-KEEP_CHECKPOINTS]:
        if _step_of(old) < step:  # never the checkpoint just written
            old.unlink()


def _step_of(path: Path) -> int:
    return int(path.stem.split("-")[1])


def _checkpoint_files(folder: Path) -> list[Path]:
    """The checkpoints this project wrote (step-<n>.pt), oldest first; other files there are not ours."""
    return sorted((p for p in folder.glob("step-*.pt") if p.stem.split("-")[1].isdigit()), key=_step_of)


def refuse_non_finite(model, job) -> None:
    """A trained weight that is inf or NaN is never written: say which weight and which settings to look at."""
    for name, param in model.named_parameters():
        if param.requires_grad and not torch.isfinite(param).all():
            training = job.training
            raise FloatingPointError(
                f"{job.experiment or job.out}: trained weight {name} is not finite after training; nothing written "
                f"(look at training.learning_rate {training.learning_rate:g}, lora.alpha {training.lora.alpha}, "
                f"max_grad_norm {training.max_grad_norm})")


def refuse_stale_output(out: Path, checkpoints: Path) -> None:
    """A fresh run (no --resume) must not start where another run left checkpoints or an output: its checkpoint
    rotation would mix the two, and a later --resume would refuse both."""
    stale = sorted(checkpoints.glob("step-*.pt")) + sorted(checkpoints.glob("checkpoint-*")) if checkpoints.is_dir() \
        else []
    if stale:
        raise ValueError(f"{checkpoints} holds checkpoints of an earlier run ({stale[-1].name}): pass --resume to "
                         f"continue it, or remove {checkpoints} to start over")
    finished = [p for p in (out / "manifest.json", out / "adapter_config.json", out / "config.json") if p.exists()]
    if finished:
        raise ValueError(f"{out} holds the output of an earlier run ({finished[0].name}): remove it, or choose "
                         "another --out")


def load_checkpoint(folder: Path, model, optimizer, scheduler, fingerprint: dict) -> int:
    candidates = _checkpoint_files(folder) if folder.is_dir() else []
    if not candidates:
        return 0
    try:  # tensors and plain containers only: a crafted checkpoint cannot run code
        state = torch.load(candidates[-1], weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise ValueError(f"{candidates[-1]}: not a checkpoint this project wrote, or damaged ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]}); remove {folder} to start over") from None
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"{candidates[-1]} was written by a run with other settings or data; remove {folder} "
                         "to start over")
    missing = set(_trainable_state(model)) - set(state["model"])
    if missing:
        raise ValueError(f"{candidates[-1]} lacks trainable weights {sorted(missing)[:3]}")
    model.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"])


# ------------------------------------------------------------------------------------------------- the run

def library_versions() -> dict:
    import peft
    import transformers

    import repro

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "repro": getattr(repro, "__version__", "0.1.0")}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def train(job: TrainJob) -> Path:
    from transformers import get_scheduler

    rank, world = rank_and_world()
    device = pick_device(job.device, rank)
    training = job.training
    seed_everything(training.seed)
    started = time.time()

    tokenizer = training_tokenizer(job)
    pad = pad_id(tokenizer)
    instances = read_jsonl(job.instances)
    check_objective(instances, training.objective, job.instances)
    encoded = encode_instances(tokenizer, instances, training.cutoff_len, str(job.instances), training.long_responses)
    examples = encoded.examples
    model = load_model(job.base_model, training, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS,
                                  weight_decay=training.weight_decay)
    steps_per_epoch, total = plan_steps(len(examples), training)
    scheduler = get_scheduler(training.lr_scheduler, optimizer, num_warmup_steps=training.warmup_steps,
                              num_training_steps=total)
    checkpoints = job.checkpoints or job.out.parent / "checkpoints"
    fingerprint = _fingerprint(job, len(examples))
    start = load_checkpoint(checkpoints, model, optimizer, scheduler, fingerprint) if job.resume else 0
    compute = training_dtype(training, device)
    autocast = (torch.autocast(device.type, dtype=compute) if compute != torch.float32 else nullcontext())
    run = TrainRun(model, params, optimizer, scheduler, training, device, pad, autocast, rank, world)

    log_path = job.out.parent / "train_log.jsonl"  # beside the output, so a resumed run keeps its history
    if rank == 0:
        job.out.mkdir(parents=True, exist_ok=True)
        _truncate_log(log_path, start)
    tracker = open_tracker(training.report_to, job.out, job.experiment or job.out.parent.name,
                           training.model_dump()) if rank == 0 else None
    model.train()
    bar = _progress(job, rank, start, total)
    for step in range(start, total):
        tick = time.time()
        indices = global_batch(step, len(examples), training, steps_per_epoch)
        record = train_step(run, examples, indices)
        record = {"step": step + 1, "epoch": step // steps_per_epoch, **record,
                  "tokens_per_s": record["tokens"] / max(time.time() - tick, 1e-9)}
        if rank == 0:
            with open(log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if tracker:
                tracker.log(record, step + 1)
            if (step + 1) % training.save_steps == 0 or step + 1 == total:
                save_checkpoint(checkpoints, step + 1, model, optimizer, scheduler, fingerprint)
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", flagged=f"{record['flagged_rate']:.3f}")
    if bar:
        bar.close()
    if tracker:
        tracker.close()
    if rank == 0:
        refuse_non_finite(model, job)
        model.save_pretrained(job.out)
        tokenizer.save_pretrained(job.out)
        follow_umask(job.out)
        write_json(job.out / "manifest.json", {
            "experiment": job.experiment, "base_model": str(job.base_model), "training": training.model_dump(),
            "instances": {"path": str(job.instances), "sha256": fingerprint["instances_sha256"],
                          "examples": len(examples), "negatives": sum(e.negative for e in examples)},
            "tokenization": {"tokenizer": job.tokenizer or str(job.base_model),
                             **{k: v for k, v in encoded.stats().items() if k != "tokens"}},
            "steps": total, "resumed_from_step": start, "world_size": world, "device": device_name(device),
            "versions": library_versions(), "git_commit": git_commit(), "wall_time_s": time.time() - started,
            "train_log": str(log_path), "base_signature": base_signature(model),
        })
    if world > 1:
        torch.distributed.barrier()
    return job.out


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines of steps after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    kept = []
    for number, line in enumerate(keep_complete_lines(path).decode("utf-8").splitlines(), start=1):
        try:
            step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}, line {number}: not a training log line; remove the file (it is only the "
                             "log) or the line") from None
        if step <= last_step:
            kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"


def _progress(job: TrainJob, rank: int, start: int, total: int):
    if not job.progress or rank != 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc=job.experiment or "train", unit="step")


def merge(base_model: str, adapter: str | Path, out: str | Path, dtype: str = "bf16") -> Path:
    """Merge a LoRA adapter into its base model and save a full model (as the online loop needs)."""
    from transformers import AutoTokenizer

    base = load_causal_lm(base_model, dtype=torch_dtype(dtype))
    merged = with_adapter(base, adapter).merge_and_unload()
    out = Path(out)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(out)
    follow_umask(out)
    return out
