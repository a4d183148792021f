"""`repro evaluate ...`: AlpacaEval win rates, lm-eval benchmarks, ROUGE."""
from __future__ import annotations

import json
from pathlib import Path

from repro.cli.common import add, positive_float, positive_int, store


def register(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="score: AlpacaEval win rate, lm-eval benchmarks, ROUGE")
    sub = evaluate.add_subparsers(dest="evaluate_command", required=True)

    p = add(sub, "winrate", "AlpacaEval win rate of an annotations file (ties count half)",
            "repro evaluate winrate ../shared/data/alpaca_eval/results/cut-13b/alpaca_eval_gpt4/annotations.json")
    p.add_argument("annotations")
    p.set_defaults(func=winrate)

    p = add(sub, "alpaca-eval", "annotate model outputs against the reference with alpaca_eval",
            "repro evaluate alpaca-eval --model-outputs out.json --out scores.json --cache cache/   # GPT-4, 1.0\n"
            "repro evaluate alpaca-eval --model-outputs out.json --out scores.json --cache cache/ "
            "--annotator local_pairwise --judge-model MODEL")
    p.add_argument("--model-outputs", required=True)
    p.add_argument("--out", required=True, help="scores JSON (annotations are written beside it)")
    p.add_argument("--cache", required=True, help="annotation cache folder (one JSON per annotator)")
    p.add_argument("--annotator", default="alpaca_eval_gpt4", help="alpaca_eval config name, or a local judge")
    p.add_argument("--version", choices=["1.0", "2.0"], default="1.0")
    p.add_argument("--length-controlled", action="store_true")
    p.add_argument("--reference", help="reference outputs (default: the version's reference from the registry)")
    p.add_argument("--limit", type=positive_int)
    p.add_argument("--cache-seed", action="append", help="stored annotations to seed the cache with")
    p.add_argument("--only-cached", action="store_true", help="call no judge: leave out uncached outputs")
    p.add_argument("--judge-model", help="model of a local judge")
    p.add_argument("--judge-adapter")
    p.add_argument("--judge-backend", choices=["transformers", "vllm"], default="transformers")
    p.add_argument("--mirror")
    p.set_defaults(func=alpaca_eval)

    p = add(sub, "rouge", "ROUGE of generated summaries against prepared references",
            "repro evaluate rouge --predictions gen.jsonl --references summarization-test.jsonl --out rouge.json")
    p.add_argument("--predictions", required=True, help="generation JSONL (repro generate)")
    p.add_argument("--references", required=True, help="prepared records JSONL (repro data prepare)")
    p.add_argument("--reference-field", choices=["output", "refinement"], default="output")
    p.add_argument("--no-stemmer", action="store_true")
    p.add_argument("--out", required=True)
    p.set_defaults(func=rouge)

    p = add(sub, "blame", "mark the tokens of each held-out rejected answer that Eq. 5 flags under a model "
            "(judgment prompt vs plain prompt): what `evaluate heldout` calls blamed tokens",
            "repro evaluate blame --model runs/small/models/smollm2-135m-instruct --items heldout.jsonl "
            "--threshold 1.1 --out heldout.blamed.jsonl")
    p.add_argument("--model", required=True)
    p.add_argument("--items", required=True, help="held-out items JSONL (repro data split)")
    p.add_argument("--threshold", type=positive_float, required=True, help="lambda of Eq. 5")
    p.add_argument("--control-seed", type=int, help="also flag under another item's judgment (seeded derangement)")
    p.add_argument("--out", required=True)
    _scoring_options(p)
    p.set_defaults(func=blame)

    p = add(sub, "heldout", "score a model on held-out judged items: per-token log-likelihood of chosen and "
            "rejected answers under the plain prompt, preference accuracy or AUC, blamed-token log-probability",
            "repro evaluate heldout --model runs/small/models/smollm2-135m-instruct "
            "--adapter runs/small/experiments/cut-shepherd/adapter --items heldout.blamed.jsonl --out scores.json")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter")
    p.add_argument("--items", required=True, help="held-out items JSONL, with `blamed` (repro evaluate blame)")
    p.add_argument("--out", required=True, help="JSON: summary and one row per item")
    p.add_argument("--trained-on", action="append", default=[],
                   help="instances or records the model trained on: an item among them is refused")
    _scoring_options(p)
    p.set_defaults(func=heldout)

    p = add(sub, "lm-eval", "ARC / HellaSwag / MMLU / TruthfulQA with pinned local task files (settings from "
            "--config's evaluation.lm_eval, else its defaults: the Open LLM Leaderboard v1 shots)",
            "repro evaluate lm-eval --model MODEL --data runs/smoke/data --config config/smoke.yaml --out lm.json")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter")
    p.add_argument("--data", required=True, help="folder of prepared evaluation sets (repro data prepare)")
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="take shots, limit, batch size and backend from this config")
    p.add_argument("--backend", choices=["shared", "hf", "vllm"],
                   help="shared: lm-eval's hf backend computing each shared context once (the default)")
    p.add_argument("--tasks", nargs="+", metavar="TASK",
                   help="score only these of the configured tasks (the workflow passes what the run's cells show)")
    p.add_argument("--limit", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tensor-parallel", type=positive_int, default=1, help="GPUs of the vllm backend's engine")
    p.add_argument("--no-cache", action="store_true",
                   help="compute every request (by default lm-eval's request cache beside --out answers the "
                        "requests an earlier, killed run of the same weights already computed)")
    p.set_defaults(func=lm_eval)


def winrate(args) -> int:
    from repro.evaluate.winrate import winrate as win_rate
    from repro.io import read_json

    annotations = read_json(args.annotations)  # (its errors name the file already)
    try:
        print(json.dumps(win_rate(annotations)))
    except ValueError as err:
        raise ValueError(f"{args.annotations}: {err}") from None
    return 0


def alpaca_eval(args) -> int:
    from repro.data.sources import LC_FEATURES
    from repro.evaluate.alpaca_eval_run import REFERENCE_FILES, evaluate_alpaca_eval, read_model_outputs

    read_model_outputs(args.model_outputs)  # before the reference is fetched
    reference = args.reference or str(store(args).path("alpaca-eval", REFERENCE_FILES[args.version]))
    lc_features = store(args).path("alpaca-eval", LC_FEATURES) if args.length_controlled else None
    scores = evaluate_alpaca_eval(
        args.model_outputs, reference, args.out, args.cache, annotator=args.annotator,
        version=args.version, length_controlled=args.length_controlled, limit=args.limit,
        cache_seed=args.cache_seed, only_cached=args.only_cached, judge_model=args.judge_model,
        judge_adapter=args.judge_adapter, judge_backend=args.judge_backend, lc_features=lc_features)
    print(json.dumps({k: scores[k] for k in ("win_rate", "standard_error", "n", "wins", "losses", "ties",
                                             "missing", "annotator", "comparable_with_paper")}))
    return 0


def rouge(args) -> int:
    from repro.evaluate.rouge import score_files
    from repro.io import write_json

    payload = score_files(args.predictions, args.references, args.reference_field, not args.no_stemmer)
    write_json(args.out, payload)
    print(json.dumps(payload))
    return 0


def lm_eval(args) -> int:
    from repro.config import LmEvalSettings, load_config
    from repro.evaluate.lm_eval_run import EVAL_SETS, run_lm_eval

    settings = load_config(args.config).evaluation.lm_eval if args.config else LmEvalSettings()
    data = {name: Path(args.data) / f"{name}.jsonl" for name in EVAL_SETS}
    unknown = sorted(set(args.tasks or ()) - set(settings.tasks))
    if unknown:
        raise ValueError(f"--tasks: {', '.join(unknown)} not among the configured tasks ({', '.join(settings.tasks)})")
    shots = {task: t.num_fewshot for task, t in settings.tasks.items() if not args.tasks or task in args.tasks}
    payload = run_lm_eval(args.model, args.out, data, shots,
                          adapter=args.adapter, backend=args.backend or settings.backend,
                          limit=args.limit if args.limit is not None else settings.limit,
                          batch_size=args.batch_size or settings.batch_size, device=args.device,
                          tensor_parallel=args.tensor_parallel, log_samples=settings.log_samples,
                          cache=not args.no_cache)
    print(json.dumps(payload["scores"]))
    return 0


def _scoring_options(p) -> None:
    p.add_argument("--cutoff", type=positive_int, default=2048, help="cutoff_len of the runs scored")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--device", default="cpu")


def _items(path):
    from repro.evaluate.heldout import read_items
    from repro.io import read_jsonl

    return read_items(path, read_jsonl(path))


def blame(args) -> int:
    from repro.evaluate import heldout as h
    from repro.io import write_jsonl

    items = _items(args.items)
    model, tokenizer = h.load_model(args.model, None, args.device, fp32=True)  # bf16 moves tokens across lambda
    rows = h.blame(model, tokenizer, items, args.threshold, args.cutoff, args.batch_size, args.control_seed)
    write_jsonl(args.out, rows)
    flagged = [len(r["blamed"]) for r in rows if "blamed" in r]
    print(json.dumps({"items": len(rows), "rejected": len(flagged), "blamed_tokens": sum(flagged),
                      "tokens": sum(len(r["log_ratio"]) for r in rows if "log_ratio" in r),
                      "items_with_blamed_tokens": sum(1 for f in flagged if f),
                      "items_without_blamed_tokens": sum(1 for f in flagged if not f)}))
    return 0


def heldout(args) -> int:
    from repro.evaluate import heldout as h
    from repro.io import read_jsonl, sha256_file, write_json

    items = _items(args.items)
    for trained in args.trained_on:
        h.check_disjoint(items, read_jsonl(trained), args.items, trained)
    model, tokenizer = h.load_model(args.model, args.adapter, args.device)
    rows = h.score(model, tokenizer, items, args.cutoff, args.batch_size)
    summary = h.summarize(rows)
    write_json(args.out, {"model": args.model, "adapter": args.adapter,
                          "adapter_sha256": sha256_file(Path(args.adapter) / "adapter_model.safetensors")
                          if args.adapter else None,
                          "items_file": args.items, "items_sha256": sha256_file(args.items),
                          "summary": summary, "items": rows})
    print(json.dumps(summary))
    return 0
