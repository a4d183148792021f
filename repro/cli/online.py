"""`repro judge` and `repro online draw`: the steps of a live online loop (training is `repro train`)."""
from __future__ import annotations

import json
import sys

from repro.cli.common import add, meta_path


def register(commands) -> None:
    p = add(commands, "judge", "judge responses (Figure 8 prompt, or an AI judge); cached, resumable, cost-accounted",
            "repro judge --config config/paper.yaml --judge gpt-4 --inputs responses.jsonl --out judged.jsonl")
    p.add_argument("--config", required=True, help="config whose `judges` section defines the judge")
    p.add_argument("--judge", required=True, help="a key of the config's `judges`")
    p.add_argument("--inputs", required=True, help="JSONL of {instruction, input?, output}")
    p.add_argument("--out", required=True, help="judged JSONL (training records); a .meta.json beside it")
    p.add_argument("--cache", help="judgment cache (default: OUT.cache.jsonl)")
    p.add_argument("--model", help="local judges: the model folder (default: the config's models entry)")
    p.add_argument("--adapter", help="AI judges: the adapter trained on the Figure 9 template")
    p.add_argument("--backend", choices=["transformers", "vllm"])
    p.set_defaults(func=judge)

    online = commands.add_parser("online", help="online loop steps")
    sub = online.add_subparsers(dest="online_command", required=True)
    p = add(sub, "draw", "draw new instructions for one iteration (seeded, never one used before)",
            "repro online draw --pool runs/paper/data/stanford-alpaca.jsonl --exclude runs/paper/data/cut-iter1.jsonl "
            "--n 1000 --label live-iter1 --out instructions.jsonl")
    p.add_argument("--pool", required=True, help="prepared records whose instructions are drawn")
    p.add_argument("--exclude", nargs="*", default=[], help="JSONL files whose instructions are never drawn")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--label", required=True, help="names the draw (its seed stream and the ids)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=draw)


def judge(args) -> int:
    from repro.config import load_config
    from repro.judge.run import judge_file

    summary = judge_file(args.judge, load_config(args.config), args.inputs, args.out, args.cache,
                         model_path=args.model, adapter=args.adapter, backend=args.backend)
    print(json.dumps(summary))
    return 0


def draw(args) -> int:
    from repro.io import read_jsonl, write_json, write_jsonl
    from repro.online import draw_instructions

    rows, stats = draw_instructions(read_jsonl(args.pool), [read_jsonl(p) for p in args.exclude], args.n,
                                    args.seed, args.label, source=args.pool)
    write_jsonl(args.out, rows)
    write_json(meta_path(args.out), {**stats, "pool_file": args.pool, "excluded_files": args.exclude})
    print(json.dumps(stats), file=sys.stderr)
    return 0
