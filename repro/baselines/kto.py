"""KTO through TRL's KTOTrainer (not in the paper; Ethayarajh et al. 2024): unpaired desirable / undesirable
examples, the judgment's verdict without its words (repro/data/objectives.py builds them).

Instances of kind ``unpaired`` ({prompt, completion, label}); beta and the two weights from ``training.kto``; the
rest of the recipe (LoRA, optimiser, batch, epochs) as CUT's, through repro/baselines/trl_run.py. TRL reads the
examples in file order (its KL estimate pairs each prompt with another example's completion in the same
micro-batch), so the instances are shuffled when built, and a micro-batch needs at least two examples. With a LoRA
model the reference policy is the base model (the adapter disabled).
"""
from __future__ import annotations

from pathlib import Path

import torch

from repro.baselines.trl_run import read_instances, train_with_trl, trainer_arguments
from repro.cut.train import TrainJob


def make_trainer(job: TrainJob, model, tokenizer, examples: list[dict], device: torch.device, world: int = 1):
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    kto = job.training.kto
    args = KTOConfig(beta=kto.beta, desirable_weight=kto.desirable_weight,
                     undesirable_weight=kto.undesirable_weight, loss_type="kto",
                     train_sampling_strategy="sequential", **trainer_arguments(job, device, world))
    dataset = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"], "label": e["label"]}
                                 for e in examples])
    return KTOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def read_examples(path: Path) -> list[dict]:
    examples = read_instances(path, "unpaired", "KTO", ("prompt", "completion"))
    for i, e in enumerate(examples):
        if not isinstance(e.get("label"), bool):
            raise ValueError(f"{path}, record {i}, field 'label': {e.get('label')!r}, expected true (desirable) or "
                             "false (undesirable)")
    return examples


def train_kto(job: TrainJob) -> Path:
    examples = read_examples(job.instances)
    desirable = sum(e["label"] for e in examples)
    return train_with_trl(job, examples, make_trainer, "trl.KTOTrainer",
                          {"examples": len(examples), "desirable": desirable, "undesirable": len(examples) - desirable})
