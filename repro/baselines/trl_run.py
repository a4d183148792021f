"""What the TRL-trained objectives (DPO, ILF-DPO, KTO) share: the Trainer arguments taken from the config's
training recipe, and one run that seeds, trains (resuming from TRL's own checkpoints), saves the adapter and
writes the manifest beside it, as CUT training does."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from repro.cut.tracking import trainer_report_to
from repro.cut.train import (
    TrainJob,
    device_name,
    git_commit,
    library_versions,
    load_model,
    pick_device,
    rank_and_world,
    refuse_non_finite,
    seed_everything,
    training_dtype,
    training_tokenizer,
)
from repro.io import follow_umask, read_jsonl, sha256_file, write_json
from repro.models.load import base_signature


def trainer_arguments(job: TrainJob, device: torch.device, world: int) -> dict:
    """transformers.TrainingArguments fields from `training` (batch_size examples per optimiser step as
    micro-batches x accumulation x processes)."""
    t = job.training
    compute = training_dtype(t, device)
    return dict(
        output_dir=str(job.checkpoints or job.out.parent / "checkpoints"),
        per_device_train_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=max(1, t.batch_size // (t.micro_batch_size * world)),
        learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm or 0.0, num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1, seed=t.seed, data_seed=t.seed, max_length=t.cutoff_len,
        save_steps=t.save_steps, save_total_limit=2, logging_steps=1, report_to=trainer_report_to(t.report_to, job.out),
        bf16=compute == torch.bfloat16, fp16=compute == torch.float16, use_cpu=device.type == "cpu",
        gradient_checkpointing=t.gradient_checkpointing, disable_tqdm=not job.progress, dataset_num_proc=None)


def read_instances(path: Path, kind: str, objective: str, texts: tuple[str, ...]) -> list[dict]:
    """The instances file of a TRL-trained objective: every row of `kind`, each of `texts` a non-empty string."""
    rows = read_jsonl(path)
    if not rows:
        raise ValueError(f"{path}: no training instances")
    for i, row in enumerate(rows):
        if row.get("kind") != kind:
            raise ValueError(f"{path}, record {i}: kind {row.get('kind')!r}, but {objective} trains on '{kind}' "
                             "instances; rebuild the instances with this objective")
        for key in texts:
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise ValueError(f"{path}, record {i}, field '{key}': missing or empty")
    return rows


def train_with_trl(job: TrainJob, examples: list[dict], make_trainer, trainer_name: str, counts: dict) -> Path:
    """Train `examples` with the trainer `make_trainer(job, model, tokenizer, examples, device, world)` builds."""
    rank, world = rank_and_world()
    device = pick_device(job.device, rank)
    started = time.time()
    tokenizer = training_tokenizer(job)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    seed_everything(job.training.seed)  # the LoRA weights are drawn when the model is wrapped: seed them
    model = load_model(job.base_model, job.training, device)
    trainer = make_trainer(job, model, tokenizer, examples, device, world)
    checkpoints = Path(trainer.args.output_dir)
    resume = job.resume and any(checkpoints.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    if rank == 0:
        job.out.mkdir(parents=True, exist_ok=True)
        refuse_non_finite(model, job)
        model.save_pretrained(job.out)
        tokenizer.save_pretrained(job.out)
        follow_umask(job.out)
        log_path = job.out.parent / "train_log.jsonl"
        log_path.write_text("".join(json.dumps(r) + "\n" for r in trainer.state.log_history if "loss" in r))
        write_json(job.out / "manifest.json", {
            "experiment": job.experiment, "base_model": str(job.base_model), "training": job.training.model_dump(),
            "trainer": trainer_name,
            "instances": {"path": str(job.instances), "sha256": sha256_file(job.instances), **counts},
            "base_signature": base_signature(model),
            "steps": trainer.state.global_step, "resumed": resume, "world_size": world, "device": device_name(device),
            "versions": {**library_versions(), "trl": _trl_version()}, "git_commit": git_commit(),
            "wall_time_s": time.time() - started, "train_log": str(log_path)})
    return job.out


def _trl_version() -> str:
    import trl

    return trl.__version__
