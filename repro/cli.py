"""`repro <stage> ...`: the only entry point the Snakefile uses; every stage also runs by hand."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _store(args, config=None):
    """The data store: project-generated schema samples if asked for, else a mirror (REPRO_DATA_MIRROR, then
    --mirror, then the config's data.mirror), else the download cache."""
    from repro.data import DataStore

    if getattr(args, "generated_samples", None):  # project-generated schema samples win over any mirror
        return DataStore(mirror=args.generated_samples)
    return DataStore.from_env(mirror=getattr(args, "mirror", None) or (config.data.mirror if config else None))


def _provenance(paths) -> list[dict]:
    """The source files a prepared set came from, with their sha256."""
    from repro.io import sha256_file

    return [{"path": str(path), "sha256": sha256_file(path)} for path in sorted(set(paths))]


def cmd_data_prepare(args) -> int:
    from repro.data import prepare
    from repro.data.samples import generated_note
    from repro.io import write_json, write_jsonl

    store = _TrackingStore(_store(args))
    rows, stats = prepare(args.name, store)
    if args.limit is not None:
        stats["limit"] = args.limit
        stats["dropped_by_limit"] = max(0, len(rows) - args.limit)
        rows = rows[: args.limit]
    write_jsonl(args.out, rows)
    meta = {"dataset": args.name, "rows": len(rows), "stats": stats, "files": _provenance(store.touched),
            "mirror": str(store.inner.mirror) if store.inner.mirror else None,
            "generated_schema_sample": generated_note(store.inner.mirror)}
    write_json(_meta_path(args.out), meta)
    print(json.dumps({"dataset": args.name, "rows": len(rows), **stats}), file=sys.stderr)
    return 0


def cmd_data_instances(args) -> int:
    from repro.data import prepare
    from repro.data.objectives import build_objective_instances
    from repro.io import read_jsonl, write_json, write_jsonl

    if args.records:
        records, source = read_jsonl(args.records), args.records
    else:
        records, _ = prepare(args.name, _store(args))
        source = args.name
        if args.limit is not None:
            records = records[: args.limit]
    instances, stats = build_objective_instances(records, args.objective, downsample=args.downsample, seed=args.seed,
                                                 source=source, skip_empty=args.skip_empty,
                                                 instructions=args.instructions)
    if not instances:
        raise ValueError(f"{source}: no training instances")
    write_jsonl(args.out, instances)
    write_json(_meta_path(args.out), {"dataset": args.name, "records": str(source), **stats})
    print(json.dumps(stats), file=sys.stderr)
    return 0


def cmd_data_tokenize(args) -> int:
    from repro.config import load_config
    from repro.cut.collate import encode_instances, tokenized_row
    from repro.data.experiment import experiment_instances, experiment_tokenizer
    from repro.data.objectives import PAIR_OBJECTIVES
    from repro.io import read_jsonl, write_json, write_jsonl

    config = load_config(args.config)
    training = config.experiment_training(args.experiment)
    if training.objective in PAIR_OBJECTIVES:
        raise ValueError(f"experiment '{args.experiment}' trains {training.objective} on preference pairs, which "
                         "TRL's DPOTrainer tokenises itself")
    store = _store(args, config)
    if args.instances:
        instances, source = read_jsonl(args.instances), args.instances
    else:
        instances, _ = experiment_instances(config, args.experiment, store)
        source = f"experiment {args.experiment}"
    tokenizer = experiment_tokenizer(config, args.experiment, store, args.runs or f"runs/{config.profile}")
    encoded = encode_instances(tokenizer, instances, training.cutoff_len, source, training.long_responses)
    write_jsonl(args.out, [tokenized_row(e) for e in encoded.examples])
    stats = {"experiment": args.experiment, "instances_from": source, **encoded.stats()}
    write_json(_meta_path(args.out), stats)
    print(json.dumps({k: v for k, v in stats.items() if k != "dropped_positions"}), file=sys.stderr)
    return 0


def cmd_data_samples(args) -> int:
    from repro.data.samples import write_schema_samples

    print(json.dumps(write_schema_samples(args.out, n=args.n, seed=args.seed)))
    return 0


def cmd_data_sources(args) -> int:
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


def cmd_tiny_model(args) -> int:
    from repro.tiny import build_tiny_model

    print(build_tiny_model(args.out_dir, seed=args.seed))
    return 0


def cmd_model_build(args) -> int:
    from repro.models import build_model

    print(build_model(args.source, args.out_dir, _store(args)))
    return 0


def cmd_train(args) -> int:
    from repro.config import load_config
    from repro.cut.train import TrainJob, train

    config = load_config(args.config)
    training = config.experiment_training(args.experiment)
    if args.objective:
        training = training.model_copy(update={"objective": args.objective})
    runs = Path(args.runs or f"runs/{config.profile}")
    instances = Path(args.instances or runs / "experiments" / args.experiment / "instances.jsonl")
    base = args.base_model or config.base_model_path(args.experiment, runs)
    tokenizer = config.models[config.experiments[args.experiment].base_model].tokenizer
    job = TrainJob(base_model=base, instances=instances, out=Path(args.out), training=training,
                   checkpoints=Path(args.checkpoints) if args.checkpoints else None, device=config.device,
                   resume=args.resume, experiment=args.experiment, tensorboard=args.tensorboard,
                   progress=not args.no_progress, tokenizer=tokenizer, mirror=args.mirror or config.data.mirror)
    from repro.data.objectives import PAIR_OBJECTIVES

    if training.objective in PAIR_OBJECTIVES:
        from repro.cut.dpo import train_dpo

        print(train_dpo(job))
    else:
        print(train(job))
    return 0


def cmd_judge(args) -> int:
    from repro.config import load_config
    from repro.judge.run import judge_file

    summary = judge_file(args.judge, load_config(args.config), args.inputs, args.out, args.cache,
                         model_path=args.model, adapter=args.adapter, backend=args.backend)
    print(json.dumps(summary))
    return 0


def cmd_online_draw(args) -> int:
    from repro.io import read_jsonl, write_json, write_jsonl
    from repro.online import draw_instructions

    rows, stats = draw_instructions(read_jsonl(args.pool), [read_jsonl(p) for p in args.exclude], args.n,
                                    args.seed, args.label, source=args.pool)
    write_jsonl(args.out, rows)
    write_json(_meta_path(args.out), {**stats, "pool_file": args.pool, "excluded_files": args.exclude})
    print(json.dumps(stats), file=sys.stderr)
    return 0


def cmd_refine(args) -> int:
    from repro.generate.spec import Decoding, GenerationSpec
    from repro.refine import refine_records

    generation = None
    if args.config:
        from repro.config import load_config

        generation = load_config(args.config).generation
    spec = GenerationSpec(model=args.model, adapter=args.adapter,
                          backend=args.backend or (generation.backend if generation else "transformers"),
                          decoding=Decoding(max_new_tokens=args.max_new_tokens or (
                              generation.max_new_tokens if generation else 512)),
                          batch_size=generation.batch_size if generation else 8)
    print(json.dumps(refine_records(spec, args.records, args.out)))
    return 0


def cmd_merge(args) -> int:
    from repro.cut.train import merge

    print(merge(args.base_model, args.adapter, args.out, args.dtype))
    return 0


def cmd_generate(args) -> int:
    from repro.generate.run import run_generation
    from repro.generate.spec import Decoding, GenerationSpec

    defaults = None
    if args.config:
        from repro.config import load_config

        defaults = load_config(args.config).generation
    pick = lambda value, name, fallback: value if value is not None else (  # noqa: E731
        getattr(defaults, name) if defaults else fallback)
    spec = GenerationSpec(
        model=args.model, adapter=args.adapter, backend=pick(args.backend, "backend", "transformers"),
        decoding=Decoding(max_new_tokens=pick(args.max_new_tokens, "max_new_tokens", 2048),
                          temperature=pick(args.temperature, "temperature", 0.0),
                          top_p=pick(args.top_p, "top_p", 1.0), seed=args.seed),
        template=pick(args.template, "template", "alpaca"), generator=args.generator or Path(args.model).name,
        batch_size=pick(args.batch_size, "batch_size", 16), tensor_parallel=args.tensor_parallel, dtype=args.dtype)
    manifest = run_generation(spec, args.prompts, args.out, limit=args.limit, store=_store(args),
                              progress=not args.no_progress)
    print(json.dumps({k: manifest[k] for k in ("prompts", "generated_now", "reused_from_partial")}))
    return 0


def cmd_evaluate_winrate(args) -> int:
    from repro.evaluate.winrate import winrate
    from repro.io import read_json

    print(json.dumps(winrate(read_json(args.annotations))))
    return 0


def cmd_evaluate_alpaca_eval(args) -> int:
    from repro.evaluate.alpaca_eval_run import evaluate_alpaca_eval

    scores = evaluate_alpaca_eval(
        args.model_outputs, args.reference or _reference_file(args), args.out, args.cache, annotator=args.annotator,
        version=args.version, length_controlled=args.length_controlled, limit=args.limit,
        cache_seed=args.cache_seed, only_cached=args.only_cached, judge_model=args.judge_model,
        judge_adapter=args.judge_adapter, judge_backend=args.judge_backend)
    print(json.dumps({k: scores[k] for k in ("win_rate", "standard_error", "n", "wins", "losses", "ties",
                                             "missing", "annotator", "comparable_with_paper")}))
    return 0


def _reference_file(args) -> str:
    """The reference outputs of the chosen AlpacaEval version, from the data registry."""
    name = "alpaca_eval/alpaca_eval.json" if args.version == "1.0" else "alpaca_eval/alpaca_eval_gpt4_baseline.json"
    return str(_store(args).path("alpaca-eval", name))


def cmd_evaluate_rouge(args) -> int:
    from repro.evaluate.rouge import rouge
    from repro.io import read_jsonl, write_json

    predictions = read_jsonl(args.predictions)
    references = read_jsonl(args.references)
    if len(predictions) != len(references):
        raise ValueError(f"{args.predictions} has {len(predictions)} rows but {args.references} has {len(references)}")
    for i, (p, r) in enumerate(zip(predictions, references)):
        if p["instruction"] != r["instruction"]:
            raise ValueError(f"{args.predictions}, line {i + 1}: instruction differs from {args.references}")
        if not r.get(args.reference_field):
            raise ValueError(f"{args.references}, line {i + 1}, field '{args.reference_field}': empty reference")
    scores = rouge([p["output"] for p in predictions], [r[args.reference_field] for r in references],
                   use_stemmer=not args.no_stemmer)
    payload = {"benchmark": "rouge", **scores, "use_stemmer": not args.no_stemmer,
               "reference_field": args.reference_field, "predictions": args.predictions,
               "references": args.references}
    write_json(args.out, payload)
    print(json.dumps(payload))
    return 0


def cmd_evaluate_lm_eval(args) -> int:
    from repro.evaluate.lm_eval_run import run_lm_eval

    shots = {"arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0}
    batch_size, limit, backend = args.batch_size, args.limit, args.backend
    if args.config:
        from repro.config import load_config

        settings = load_config(args.config).evaluation.lm_eval
        shots = {task: t.num_fewshot for task, t in settings.tasks.items()}
        batch_size = batch_size or settings.batch_size
        limit = limit if limit is not None else settings.limit
        backend = backend or settings.backend
    data_dir = Path(args.data)
    data = {name: data_dir / f"{name}.jsonl" for name in ("arc-challenge-train", "arc-challenge-test",
                                                          "hellaswag-validation", "truthfulqa-mc", "mmlu-dev",
                                                          "mmlu-test")}
    payload = run_lm_eval(args.model, args.out, data, shots, adapter=args.adapter, backend=backend or "hf",
                          limit=limit, batch_size=batch_size or 8, device=args.device,
                          tensor_parallel=args.tensor_parallel)
    print(json.dumps(payload["scores"]))
    return 0


def cmd_report_table(args) -> int:
    from repro.config import load_config
    from repro.report.tables import build_table, write_table

    config = load_config(args.config)
    runs = Path(args.runs or f"runs/{config.profile}")
    out = Path(args.out or f"tables/{config.profile}/{args.name}.md")
    table = build_table(args.name, config, runs, _store(args))
    for path in write_table(table, out):
        print(path)
    return 0


def cmd_report_figure(args) -> int:
    from repro.config import load_config
    from repro.report.figures import build_figure

    config = load_config(args.config)
    runs = Path(args.runs or f"runs/{config.profile}")
    out = Path(args.out or f"figures/{config.profile}/{args.name}.png")
    for path in build_figure(args.name, config, runs, out, _store(args)):
        print(path)
    return 0


def cmd_plan(args) -> int:
    from repro.config import load_config
    from repro.plan import format_plan, plan

    result = plan(load_config(args.config), args.gpu, _store(args))
    print(json.dumps(result, indent=2) if args.json else format_plan(result))
    return 0


def cmd_preflight(args) -> int:
    from repro.config import ConfigError, load_config
    from repro.preflight import Preflight, format_report

    try:
        config = load_config(args.config)
    except (ConfigError, OSError):
        config = None  # preflight reports it
    checks = Preflight(args.config, gpu=args.gpu, offline=args.offline, store=_store(args, config),
                       dag=not args.no_dag).run()
    report = format_report(checks)
    print(report, end="")
    if args.out:
        from repro.io import write_text_atomic

        write_text_atomic(args.out, report)
    return 1 if any(c.problems for c in checks) else 0


def cmd_config_check(args) -> int:
    from repro.config import load_config

    config = load_config(args.config)
    print(f"{args.config}: profile '{config.profile}', {len(config.models)} models, "
          f"{len(config.experiments)} experiments: ok")
    return 0


def _meta_path(out: str) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + ".meta.json")


class _TrackingStore:
    """Wraps a DataStore and remembers which files were read, for the provenance sidecar."""

    def __init__(self, inner):
        self.inner, self.touched = inner, []

    def path(self, source_name: str, path: str):
        local = self.inner.path(source_name, path)
        self.touched.append(local)
        return local


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="data sets: list sources, prepare records, build CUT instances")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("prepare", help="convert a data set to normalised JSONL records")
    p.add_argument("name")
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, help="keep only the first N records")
    p.add_argument("--mirror", help="local data mirror (REPRO_DATA_MIRROR overrides)")
    p.add_argument("--generated-samples", help="read from this folder of project-generated schema samples instead")
    p.set_defaults(func=cmd_data_prepare)
    p = data_sub.add_parser("samples", help="write small project-generated data in the raw schema of sources the "
                            "mirror lacks (summarization, UltraFeedback), labelled as such")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data_samples)
    p = data_sub.add_parser("instances", help="build Align-P / Align-N (+ Misalign) instances")
    p.add_argument("name")
    p.add_argument("--out", required=True)
    p.add_argument("--records", help="prepared records (JSONL) to read instead of preparing NAME again")
    p.add_argument("--downsample", type=float, default=None, help="Align-P ratio (released: 0.25)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--limit", type=int)
    p.add_argument("--mirror")
    p.add_argument("--objective", default="cut", help="cut, hindsight, forward_prediction, ilf_mle, ai_judge, "
                   "ilf_dpo, dpo (repro/data/objectives.py)")
    p.add_argument("--skip-empty", action="store_true", help="leave out (and count) records with an empty response")
    p.add_argument("--instructions", type=int, help="keep the records of the first N distinct instructions")
    p.set_defaults(func=cmd_data_instances)
    p = data_sub.add_parser("tokenize", help="write exactly what the trainer sees of an experiment's instances: "
                            "ids and labels (Hugging Face convention, not shifted) per instance")
    p.add_argument("--config", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", required=True, help="JSONL: {source_index, kind, input_ids, labels, misalign_input_ids, "
                   "misalign_labels}; a .meta.json beside it counts truncations and over-long responses")
    p.add_argument("--instances", help="tokenise this instances file instead of building the experiment's")
    p.add_argument("--runs", help="run folder of the profile (default runs/<profile>)")
    p.add_argument("--mirror")
    p.set_defaults(func=cmd_data_tokenize)
    p = data_sub.add_parser("sources", help="list the data sources and data sets")
    p.set_defaults(func=cmd_data_sources)

    p = sub.add_parser("tiny-model", help="build a random tiny Llama + tokenizer for tests and smoke runs")
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tiny_model)

    p = sub.add_parser("train", help="train one experiment of a config (CUT; LoRA or full fine-tuning)")
    p.add_argument("--config", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", required=True, help="output folder: adapter (or full model), tokenizer, manifest")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint, if any")
    p.add_argument("--instances", help="instances JSONL (default runs/<profile>/experiments/<name>/instances.jsonl)")
    p.add_argument("--base-model", help="override the starting weights (folder or hub id)")
    p.add_argument("--runs", help="run folder of the profile (default runs/<profile>)")
    p.add_argument("--checkpoints", help="checkpoint folder (default: beside --out)")
    p.add_argument("--tensorboard", action="store_true")
    p.add_argument("--objective", help="override the experiment's training objective (the instances must match)")
    p.add_argument("--mirror", help="data mirror for the config's tokenizer source (REPRO_DATA_MIRROR wins)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("judge", help="judge responses (Figure 8 / AI judge); cached, resumable, cost-accounted")
    p.add_argument("--config", required=True, help="config whose `judges` section defines the judge")
    p.add_argument("--judge", required=True, help="a key of the config's `judges`")
    p.add_argument("--inputs", required=True, help="JSONL of {instruction, input?, output}")
    p.add_argument("--out", required=True, help="judged JSONL (training records); a .meta.json beside it")
    p.add_argument("--cache", help="judgment cache (default: OUT.cache.jsonl)")
    p.add_argument("--model", help="local judges: the model folder (default: the config's models entry)")
    p.add_argument("--adapter", help="AI judges: the adapter trained on the Figure 9 template")
    p.add_argument("--backend", choices=["transformers", "vllm"])
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("online", help="online loop steps")
    online = p.add_subparsers(dest="online_command", required=True)
    p = online.add_parser("draw", help="draw new instructions for one iteration (seeded, never reused)")
    p.add_argument("--pool", required=True, help="prepared records whose instructions are drawn")
    p.add_argument("--exclude", nargs="*", default=[], help="JSONL files whose instructions are never drawn")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--label", required=True, help="names the draw (its seed stream and the ids)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_online_draw)

    p = sub.add_parser("refine", help="ILF: the model rewrites negative responses using their judgments")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter")
    p.add_argument("--records", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="take backend, batch size and max_new_tokens from this config")
    p.add_argument("--backend", choices=["transformers", "vllm"])
    p.add_argument("--max-new-tokens", type=int)
    p.set_defaults(func=cmd_refine)

    p = sub.add_parser("merge", help="merge a LoRA adapter into its base model")
    p.add_argument("--base-model", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("generate", help="generate responses (transformers or vLLM), resumable")
    p.add_argument("--model", required=True, help="hub id, model folder, or a .gguf file")
    p.add_argument("--adapter", help="peft adapter folder, applied unmerged")
    p.add_argument("--prompts", required=True, help="alpaca_eval, summarization-test, or a JSONL of instructions")
    p.add_argument("--out", required=True)
    p.add_argument("--backend", choices=["transformers", "vllm"])
    p.add_argument("--limit", type=int, help="only the first N prompts")
    p.add_argument("--config", help="take decoding defaults from this config's `generation` section")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--template", choices=["alpaca", "chat"])
    p.add_argument("--generator", help="name written into the outputs (default: the model folder's name)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--tensor-parallel", type=int, default=1)
    p.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default="auto")
    p.add_argument("--mirror")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_generate)

    evaluate = sub.add_parser("evaluate", help="score: AlpacaEval win rate, lm-eval benchmarks, ROUGE")
    ev = evaluate.add_subparsers(dest="evaluate_command", required=True)
    p = ev.add_parser("winrate", help="AlpacaEval win rate of an annotations file")
    p.add_argument("annotations")
    p.set_defaults(func=cmd_evaluate_winrate)
    p = ev.add_parser("alpaca-eval", help="annotate model outputs against the reference with alpaca_eval")
    p.add_argument("--model-outputs", required=True)
    p.add_argument("--out", required=True, help="scores JSON (annotations are written beside it)")
    p.add_argument("--cache", required=True, help="annotation cache folder (one JSON per annotator)")
    p.add_argument("--annotator", default="alpaca_eval_gpt4", help="alpaca_eval config name, or a local judge")
    p.add_argument("--version", choices=["1.0", "2.0"], default="1.0")
    p.add_argument("--length-controlled", action="store_true")
    p.add_argument("--reference", help="reference outputs (default: the version's reference from the registry)")
    p.add_argument("--limit", type=int)
    p.add_argument("--cache-seed", action="append", help="stored annotations to seed the cache with")
    p.add_argument("--only-cached", action="store_true", help="call no judge: leave out uncached outputs")
    p.add_argument("--judge-model", help="model of a local judge")
    p.add_argument("--judge-adapter")
    p.add_argument("--judge-backend", choices=["transformers", "vllm"], default="transformers")
    p.add_argument("--mirror")
    p.set_defaults(func=cmd_evaluate_alpaca_eval)
    p = ev.add_parser("rouge", help="ROUGE of generated summaries against prepared references")
    p.add_argument("--predictions", required=True, help="generation JSONL (repro generate)")
    p.add_argument("--references", required=True, help="prepared records JSONL (repro data prepare)")
    p.add_argument("--reference-field", choices=["output", "refinement"], default="output")
    p.add_argument("--no-stemmer", action="store_true")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_evaluate_rouge)
    p = ev.add_parser("lm-eval", help="ARC / HellaSwag / MMLU / TruthfulQA with pinned local task files")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter")
    p.add_argument("--data", required=True, help="folder of prepared evaluation sets (repro data prepare)")
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="take shots, limit, batch size and backend from this config")
    p.add_argument("--backend", choices=["hf", "vllm"])
    p.add_argument("--limit", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tensor-parallel", type=int, default=1, help="GPUs of the vllm backend's engine")
    p.set_defaults(func=cmd_evaluate_lm_eval)

    p = sub.add_parser("model", help="build a local model folder (tiny, tiny-llama2, smollm2-gguf)")
    p.add_argument("action", choices=["build"])
    p.add_argument("source", choices=["tiny", "tiny-llama2", "smollm2-gguf"])
    p.add_argument("out_dir")
    p.add_argument("--mirror", help="data mirror (tiny-llama2 reads the LLaMA-2 tokenizer from it)")
    p.set_defaults(func=cmd_model_build)

    p = sub.add_parser("report", help="rebuild a table or figure of the paper from finished runs")
    report = p.add_subparsers(dest="report_command", required=True)
    for kind, func, names in (("table", cmd_report_table, ["table2", "table3", "table4", "table5", "table6"]),
                              ("figure", cmd_report_figure, ["figure2", "figure3", "figure4", "figure7"])):
        p = report.add_parser(kind, help=f"write the {kind} (.md/.csv/.tex or .png/.pdf) beside the paper's values")
        p.add_argument("name", choices=names)
        p.add_argument("--config", required=True)
        p.add_argument("--runs", help="run folder of the profile (default runs/<profile>)")
        p.add_argument("--out", help=f"default {kind}s/<profile>/<name>.{'md' if kind == 'table' else 'png'}")
        p.add_argument("--mirror", help="data mirror (stored AlpacaEval annotations)")
        p.set_defaults(func=func)

    p = sub.add_parser("plan", help="GPU-hours and judge API cost of a config, per table and figure")
    p.add_argument("--config", required=True)
    p.add_argument("--gpu", default="H100", help="H100, H200, A100 or L40S")
    p.add_argument("--mirror", help="data mirror (token counts of the real data)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("preflight", help="every check that needs no GPU and no API key: data, instances, tokens, "
                       "templates, context windows, lm-eval tasks, the DAG, GPU memory, cost")
    p.add_argument("--config", required=True)
    p.add_argument("--gpu", default="H100", help="H100 (80 GB, default), H200, A100 or L40S")
    p.add_argument("--offline", action="store_true", help="never download: data in neither the mirror nor the "
                   "cache is listed as not checked")
    p.add_argument("--mirror", help="data mirror (REPRO_DATA_MIRROR wins; default: the config's data.mirror)")
    p.add_argument("--out", help="also write the report to this file")
    p.add_argument("--no-dag", action="store_true", help="skip the snakemake dry run")
    p.set_defaults(func=cmd_preflight)

    p = sub.add_parser("config", help="validate a config file")
    p.add_argument("action", choices=["check"])
    p.add_argument("config")
    p.set_defaults(func=cmd_config_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    from repro.config import ConfigError
    from repro.data import DataError

    import os

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, ConfigError, ValueError, FileNotFoundError, FloatingPointError, RuntimeError) as err:
        if os.environ.get("REPRO_DEBUG"):
            raise
        print(f"error: {err}  (REPRO_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
