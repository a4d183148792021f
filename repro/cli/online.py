"""`repro online draw`: new instructions for an iteration of a live online loop (judging is `repro judge`,
training `repro train`)."""
from __future__ import annotations

import json

from repro.cli.common import add, meta_path, positive_int


def register(commands) -> None:
    online = commands.add_parser("online", help="online loop steps")
    sub = online.add_subparsers(dest="online_command", required=True)
    p = add(sub, "draw", "draw new instructions for one iteration (seeded, never one used before)",
            "repro online draw --pool runs/paper/data/stanford-alpaca.jsonl --exclude runs/paper/data/cut-iter1.jsonl "
            "--n 1000 --label live-iter1 --out instructions.jsonl")
    p.add_argument("--pool", required=True, help="prepared records whose instructions are drawn")
    p.add_argument("--exclude", nargs="*", default=[], help="JSONL files whose instructions are never drawn")
    p.add_argument("--n", type=positive_int, required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--label", required=True, help="names the draw (its seed stream and the ids)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=draw)


def draw(args) -> int:
    from repro.data.pool import draw_instructions
    from repro.io import read_jsonl, write_json, write_jsonl

    rows, stats = draw_instructions(read_jsonl(args.pool), [read_jsonl(p) for p in args.exclude], args.n,
                                    args.seed, args.label, source=args.pool)
    write_jsonl(args.out, rows)
    write_json(meta_path(args.out), {**stats, "pool_file": args.pool, "excluded_files": args.exclude})
    print(json.dumps(stats))
    return 0
