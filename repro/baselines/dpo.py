"""DPO and ILF-DPO through TRL's DPOTrainer (a maintained implementation, not a hand-written loss).

Same inputs and outputs as CUT training: instances of kind ``pair`` ({prompt, chosen, rejected}, prompts already
in the Figure 6 template), the same LoRA recipe and optimiser settings from the config, the adapter and a
manifest in ``--out``, checkpoints beside it, ``--resume`` continuing from the last one (repro/baselines/trl_run.py).
With a LoRA model the reference policy is the base model (TRL disables the adapter for the reference pass); beta
and the loss type come from ``training.dpo``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from repro.baselines.trl_run import read_instances, train_with_trl, trainer_arguments
from repro.cut.train import TrainJob


def make_trainer(job: TrainJob, model, tokenizer, pairs: list[dict], device: torch.device, world: int = 1):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(beta=job.training.dpo.beta, loss_type=[job.training.dpo.loss_type],
                     **trainer_arguments(job, device, world))
    dataset = Dataset.from_list([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                                 for p in pairs])
    return DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def train_dpo(job: TrainJob) -> Path:
    pairs = read_instances(job.instances, "pair", "a DPO objective", ("prompt", "chosen", "rejected"))
    return train_with_trl(job, pairs, make_trainer, "trl.DPOTrainer", {"pairs": len(pairs)})
