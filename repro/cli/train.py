"""`repro train` and `repro merge`: one experiment's adapter (or full model), and merging it into its base."""
from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

from repro.cli.common import add
from repro.cut.tracking import TRACKERS


def register(commands) -> None:
    p = add(commands, "train", "train one experiment of a config (CUT, the baselines, DPO; LoRA or full fine-tuning)",
            "repro train --config config/smoke.yaml --experiment cut-shepherd-tiny "
            "--out runs/smoke/experiments/cut-shepherd-tiny/adapter --resume\n"
            "torchrun --nproc_per_node=8 -m repro.cli train --config config/paper.yaml --experiment cut-online-iter1 "
            "--out runs/paper/experiments/cut-online-iter1/adapter")
    p.add_argument("--config", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", required=True, help="output folder: adapter (or full model), tokenizer, manifest")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint, if any")
    p.add_argument("--instances", help="instances JSONL (default runs/<profile>/experiments/<name>/instances.jsonl)")
    p.add_argument("--base-model", help="override the starting weights (folder or hub id)")
    p.add_argument("--runs", help="run folder of the profile (default runs/<profile>)")
    p.add_argument("--checkpoints", help="checkpoint folder (default: beside --out)")
    p.add_argument("--report-to", choices=TRACKERS,
                   help="experiment tracker (default: the config's training.report_to)")
    p.add_argument("--objective", help="override the experiment's training objective (the instances must match)")
    p.add_argument("--mirror", help="data mirror for the config's tokenizer source (REPRO_DATA_MIRROR wins)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=train)

    p = add(commands, "merge", "merge a LoRA adapter into its base model (the online loop's next starting model)",
            "repro merge --base-model BASE --adapter ADAPTER --out MERGED --dtype fp16")
    p.add_argument("--base-model", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    p.set_defaults(func=merge)


def train(args) -> int:
    from repro.config import load_config
    from repro.cut.train import TrainJob, refuse_stale_output
    from repro.cut.train import train as train_cut
    from repro.data.objectives import PAIR_OBJECTIVES
    from repro.io import exclusive

    config = load_config(args.config)
    training = config.experiment_training(args.experiment)
    if args.objective:
        training = training.model_copy(update={"objective": args.objective})
    if args.report_to:
        training = training.model_copy(update={"report_to": args.report_to})
    runs = Path(args.runs or f"runs/{config.profile}")
    instances = Path(args.instances or runs / "experiments" / args.experiment / "instances.jsonl")
    base = args.base_model or config.base_model_path(args.experiment, runs)
    tokenizer = config.models[config.experiments[args.experiment].base_model].tokenizer
    job = TrainJob(base_model=base, instances=instances, out=Path(args.out), training=training,
                   checkpoints=Path(args.checkpoints) if args.checkpoints else None, device=config.device,
                   resume=args.resume, experiment=args.experiment,
                   progress=not args.no_progress, tokenizer=tokenizer, mirror=args.mirror or config.data.mirror)
    # the run owns its output: one process at a time (torchrun: rank 0 holds the lock for all), and a fresh run
    # never starts over another run's checkpoints or output
    owner = exclusive(job.out, "training") if int(os.environ.get("RANK", "0")) == 0 else nullcontext()
    with owner:
        if not job.resume:
            refuse_stale_output(job.out, job.checkpoints or job.out.parent / "checkpoints")
        if training.objective in PAIR_OBJECTIVES:
            from repro.baselines.dpo import train_dpo

            print(train_dpo(job))
        elif training.objective == "kto":
            from repro.baselines.kto import train_kto

            print(train_kto(job))
        else:
            print(train_cut(job))
    return 0


def merge(args) -> int:
    from repro.cut.train import merge as merge_adapter

    print(merge_adapter(args.base_model, args.adapter, args.out, args.dtype))
    return 0
