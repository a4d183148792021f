"""`repro judge` and `repro judge agreement`: judging responses (the online loop's judge step), and measuring a
judge against reference annotations."""
from __future__ import annotations

import json

from repro.cli.common import add, non_negative_int, positive_int


def register(commands) -> None:
    p = add(commands, "judge", "judge responses (Figure 8 prompt, or an AI judge); cached, resumable, cost-accounted",
            "repro judge --config config/paper.yaml --judge gpt-4 --inputs responses.jsonl --out judged.jsonl")
    p.add_argument("--config", help="config whose `judges` section defines the judge (required)")
    p.add_argument("--judge", help="a key of the config's `judges` (required)")
    p.add_argument("--inputs", help="JSONL of {instruction, input?, output} (required)")
    p.add_argument("--out", help="judged JSONL (training records); a .meta.json beside it (required)")
    _judge_options(p)
    p.set_defaults(func=judge)
    sub = p.add_subparsers(dest="judge_command")
    p = add(sub, "agreement", "measure a judge against reference pairwise annotations (alpaca_eval files): "
            "agreement, Cohen's kappa, position and length bias",
            "repro judge agreement --annotations mine.json --reference gpt4.json --out agreement.json\n"
            "repro judge agreement --judge alpaca_eval --config config/smoke.yaml --model runs/smoke/models/tiny "
            "--reference-stored cut-13b --limit 8 --out agreement.json --mirror ../shared/data")
    p.add_argument("--annotations", help="the judge's annotation file (instead of --judge)")
    p.add_argument("--judge", help="run this judge on the reference pairs: a key of the config's `judges`, or "
                   "'alpaca_eval' for the profile's AlpacaEval annotator")
    p.add_argument("--config", help="with --judge: the config that defines it")
    p.add_argument("--reference", nargs="*", default=[], help="reference annotation files")
    p.add_argument("--reference-stored", nargs="*", default=[], metavar="MODEL",
                   help="the mirror's stored GPT-4 (AlpacaEval 1.0) annotations of these models, e.g. cut-13b "
                   "llama-2-13b-chat-hf")
    p.add_argument("--limit", type=positive_int, help="with --judge: the first N reference pairs")
    p.add_argument("--bootstrap", type=non_negative_int, default=1000,
                   help="bootstrap samples of the agreement interval")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSON result; with --judge its annotations beside it")
    p.add_argument("--mirror")
    _judge_options(p)
    p.set_defaults(func=agreement)


def _judge_options(p) -> None:
    p.add_argument("--cache", help="judgment cache (default: beside OUT)")
    p.add_argument("--model", help="local judges: the model folder (default: the config's models entry)")
    p.add_argument("--adapter", help="AI judges: the adapter trained on the Figure 9 template")
    p.add_argument("--backend", choices=["transformers", "vllm"])
    p.add_argument("--retry-unusable", action="store_true",
                   help="buy again the judgments that were paid for but could not be used (their content not text)")


def judge(args) -> int:
    from repro.config import load_config
    from repro.judge.run import judge_file

    missing = [f"--{k}" for k in ("config", "judge", "inputs", "out") if not getattr(args, k)]
    if missing:
        raise ValueError(f"repro judge needs {', '.join(missing)} (or a subcommand: agreement)")

    summary = judge_file(args.judge, load_config(args.config), args.inputs, args.out, args.cache,
                         model_path=args.model, adapter=args.adapter, backend=args.backend,
                         retry_unusable=getattr(args, "retry_unusable", False))
    print(json.dumps(summary))
    return 0


def agreement(args) -> int:
    from repro.cli.common import store
    from repro.evaluate.alpaca_eval_run import stored_annotations
    from repro.io import write_json

    references = list(args.reference) + [str(store(args).path("alpaca-eval", stored_annotations(m)))
                                         for m in args.reference_stored]
    if not references:
        raise ValueError("give the reference annotations: --reference FILE... or --reference-stored MODEL...")
    if bool(args.annotations) == bool(args.judge):
        raise ValueError("give either --annotations (a judge's annotation file) or --judge (a judge to run)")
    if args.annotations:
        from repro.judge.agreement import agreement as measure

        result = measure(args.annotations, references, args.bootstrap, args.seed)
        write_json(args.out, result)
    else:
        from repro.config import load_config
        from repro.judge.agreement_run import judge_agreement

        if not args.config:
            raise ValueError("--judge needs --config (the config that defines the judge)")
        result = judge_agreement(args.judge, load_config(args.config), references, args.out, args.limit, args.cache,
                                 args.model, args.adapter, args.backend, args.bootstrap, args.seed)
    print(json.dumps({k: result[k] for k in ("n", "agreement", "agreement_ci95", "kappa", "judge_unmatched",
                                             "reference_without_judgment", "judge_missing_preference")}))
    return 0
