"""`repro data ...`: list the sources, prepare records, build instances, tokenise them, write schema samples."""
from __future__ import annotations

import json

from repro.cli.common import (
    TrackingStore,
    add,
    meta_path,
    non_negative_float,
    positive_int,
    provenance,
    store,
)


def register(commands) -> None:
    data = commands.add_parser("data", help="data sets: sources, prepared records, instances, tokens")
    sub = data.add_subparsers(dest="data_command", required=True)

    p = add(sub, "sources", "list the data sources (URL, sha256, licence) and the data sets",
            "repro data sources")
    p.set_defaults(func=sources)

    p = add(sub, "prepare", "convert a data set to normalised JSONL records (+ a .meta.json with provenance)",
            "repro data prepare shepherd --out shepherd.jsonl --mirror ../shared/data")
    p.add_argument("name")
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=positive_int, help="keep only the first N records")
    p.add_argument("--mirror", help="local data mirror (REPRO_DATA_MIRROR overrides)")
    p.add_argument("--generated-samples", help="read from this folder of project-generated schema samples instead")
    p.set_defaults(func=prepare)

    p = add(sub, "instances", "build training instances of an objective (CUT: Align-P / Align-N + Misalign)",
            "repro data instances cut-iter1 --downsample 0.25 --seed 42 --out iter1.jsonl   # 358 instances")
    p.add_argument("name")
    p.add_argument("--out", required=True)
    p.add_argument("--records", help="prepared records (JSONL) to read instead of preparing NAME again")
    p.add_argument("--downsample", type=non_negative_float, default=None, help="Align-P ratio (released: 0.25)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--limit", type=positive_int)
    p.add_argument("--mirror")
    p.add_argument("--objective", default="cut", help="cut, hindsight, forward_prediction, ilf_mle, ai_judge, "
                   "ilf_dpo, dpo, kto (repro/data/objectives.py)")
    p.add_argument("--kto-refinements", action="store_true",
                   help="kto: each negative's refinement is a desirable example too (training.kto)")
    p.add_argument("--skip-empty", action="store_true", help="leave out (and count) records with an empty response")
    p.add_argument("--instructions", type=positive_int, help="keep the records of the first N distinct instructions")
    p.set_defaults(func=instances)

    p = add(sub, "tokenize", "write exactly what the trainer sees of an experiment's instances: ids and labels "
            "(Hugging Face convention, not shifted) per instance",
            "repro data tokenize --config config/paper.yaml --experiment cut-online-iter1 --out iter1.tokens.jsonl")
    p.add_argument("--config", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", required=True, help="JSONL: {source_index, kind, input_ids, labels, misalign_input_ids, "
                   "misalign_labels}; a .meta.json beside it counts truncations and over-long responses")
    p.add_argument("--instances", help="tokenise this instances file instead of building the experiment's")
    p.add_argument("--runs", help="run folder of the profile (default runs/<profile>)")
    p.add_argument("--mirror")
    p.set_defaults(func=tokenize)

    p = add(sub, "split", "split prepared records into records to train on and held-out items never trained on "
            "(seeded; items keep source_index)",
            "repro data split --records runs/small/data/shepherd.jsonl --dataset shepherd --items 200 "
            "--train-records 96 --train-out train.jsonl --items-out heldout.jsonl")
    p.add_argument("--records", required=True, help="prepared records JSONL (repro data prepare)")
    p.add_argument("--dataset", required=True, help="the data set's NAME (written into each item)")
    p.add_argument("--items", type=positive_int, required=True)
    p.add_argument("--train-records", type=positive_int,
                   help="training records drawn from the rest (default: all the rest)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-out", required=True)
    p.add_argument("--items-out", required=True)
    p.add_argument("--trained-items-out", help="the training records as items too (in-sample scoring)")
    p.set_defaults(func=split)

    p = add(sub, "samples", "write small project-generated data in the raw schema of sources the mirror lacks "
            "(summarization, UltraFeedback), labelled as such", "repro data samples --out runs/smoke/generated-data")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=positive_int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=samples)


def sources(args) -> int:
    from repro.data.converters import DATASETS
    from repro.data.sources import SOURCES

    for src in SOURCES.values():
        print(f"{src.name}: {src.description} [{src.licence}] {src.homepage}")
        for f in src.files[:3]:
            print(f"    {f.path}  <- {f.archive or f.url}  sha256={f.sha256 or '-'}")
        if len(src.files) > 3:
            print(f"    ... {len(src.files) - 3} more files")
        if src.note:
            print(f"    note: {src.note}")
    print("\ndata sets (repro data prepare NAME):", ", ".join(sorted(DATASETS)))
    return 0


def prepare(args) -> int:
    from repro.data import prepare as prepare_dataset
    from repro.data.samples import generated_note
    from repro.io import write_json, write_jsonl

    tracking = TrackingStore(store(args))
    rows, stats = prepare_dataset(args.name, tracking)
    if args.limit is not None:
        stats["limit"] = args.limit
        stats["dropped_by_limit"] = max(0, len(rows) - args.limit)
        rows = rows[: args.limit]
    write_jsonl(args.out, rows)
    meta = {"dataset": args.name, "rows": len(rows), "stats": stats, "files": provenance(tracking.touched),
            "mirror": str(tracking.inner.mirror) if tracking.inner.mirror else None,
            "generated_schema_sample": generated_note(tracking.inner.mirror)}
    write_json(meta_path(args.out), meta)
    print(json.dumps({"dataset": args.name, "rows": len(rows), **stats}))
    return 0


def instances(args) -> int:
    from repro.data import prepare as prepare_dataset
    from repro.data.objectives import build_objective_instances
    from repro.io import read_jsonl, write_json, write_jsonl

    if args.records:
        records, source = read_jsonl(args.records), args.records
    else:
        records, _ = prepare_dataset(args.name, store(args))
        source = args.name
        if args.limit is not None:
            records = records[: args.limit]
    rows, stats = build_objective_instances(records, args.objective, downsample=args.downsample, seed=args.seed,
                                            source=source, skip_empty=args.skip_empty,
                                            instructions=args.instructions, kto_refinements=args.kto_refinements)
    write_jsonl(args.out, rows)
    write_json(meta_path(args.out), {"dataset": args.name, "records": str(source), **stats})
    print(json.dumps(stats))
    return 0


def tokenize(args) -> int:
    from repro.config import load_config
    from repro.cut.collate import encode_instances, tokenized_row
    from repro.data.experiment import experiment_instances, experiment_tokenizer
    from repro.data.objectives import TRL_OBJECTIVES
    from repro.io import read_jsonl, write_json, write_jsonl

    config = load_config(args.config)
    training = config.experiment_training(args.experiment)
    if training.objective in TRL_OBJECTIVES:
        raise ValueError(f"experiment '{args.experiment}' trains {training.objective} through TRL, whose trainer "
                         "tokenises its examples itself")
    data = store(args, config)
    if args.instances:
        rows, source = read_jsonl(args.instances), args.instances
    else:
        rows, _ = experiment_instances(config, args.experiment, data)
        source = f"experiment {args.experiment}"
    tokenizer = experiment_tokenizer(config, args.experiment, data, args.runs or f"runs/{config.profile}")
    encoded = encode_instances(tokenizer, rows, training.cutoff_len, source, training.long_responses)
    write_jsonl(args.out, [tokenized_row(e) for e in encoded.examples])
    stats = {"experiment": args.experiment, "instances_from": source, **encoded.stats()}
    write_json(meta_path(args.out), stats)
    print(json.dumps({k: v for k, v in stats.items() if k != "dropped_positions"}))
    return 0


def samples(args) -> int:
    from repro.data.samples import write_schema_samples

    print(json.dumps(write_schema_samples(args.out, n=args.n, seed=args.seed)))
    return 0


def split(args) -> int:
    from repro.data.split import split_records, trained_items
    from repro.io import read_jsonl, sha256_file, write_json, write_jsonl

    train, items = split_records(read_jsonl(args.records), args.dataset, args.items, args.train_records, args.seed)
    write_jsonl(args.train_out, train)
    write_jsonl(args.items_out, items)
    if args.trained_items_out:
        write_jsonl(args.trained_items_out, trained_items(train, args.dataset))
    meta = {"dataset": args.dataset, "records": args.records, "records_sha256": sha256_file(args.records),
            "seed": args.seed, "items": len(items), "train_records": len(train)}
    write_json(meta_path(args.items_out), meta)
    print(json.dumps(meta))
    return 0
