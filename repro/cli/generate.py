"""`repro generate` and `repro refine`: answers (AlpacaEval, summaries, online pools) and ILF refinements.

Decoding settings come from the config's `generation` section with --config, else from that section's own
defaults (the paper's: greedy, 2048 new tokens, vLLM); a flag overrides either.
"""
from __future__ import annotations

import json
from pathlib import Path

from repro.cli.common import add, non_negative_float, positive_int, probability, store


def register(commands) -> None:
    p = add(commands, "generate", "generate responses (transformers or vLLM), resumable",
            "repro generate --model runs/smoke/models/tiny --prompts alpaca_eval --limit 4 --out out.json "
            "--config config/smoke.yaml\n"
            "repro generate --model MODEL --adapter ADAPTER --prompts instructions.jsonl --out answers.jsonl")
    p.add_argument("--model", required=True, help="hub id, model folder, or a .gguf file")
    p.add_argument("--adapter", help="peft adapter folder, applied unmerged")
    p.add_argument("--prompts", required=True, help="alpaca_eval, summarization-test, or a JSONL of instructions")
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="take decoding settings from this config's `generation` section")
    p.add_argument("--backend", choices=["transformers", "vllm"])
    p.add_argument("--limit", type=positive_int, help="only the first N prompts")
    p.add_argument("--max-new-tokens", type=positive_int)
    p.add_argument("--temperature", type=non_negative_float)
    p.add_argument("--top-p", type=probability)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--template", choices=["alpaca", "chat"])
    p.add_argument("--generator", help="name written into the outputs (default: the model folder's name)")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--tensor-parallel", type=positive_int, default=1)
    p.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default="auto")
    p.add_argument("--mirror")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=generate)

    p = add(commands, "refine", "ILF: the model rewrites negative responses using their judgments",
            "repro refine --config config/paper.yaml --model MODEL --records shepherd.jsonl --out refined.jsonl")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter")
    p.add_argument("--records", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="take backend, batch size and max_new_tokens from this config")
    p.add_argument("--backend", choices=["transformers", "vllm"])
    p.add_argument("--max-new-tokens", type=positive_int)
    p.set_defaults(func=refine)


def settings(args):
    """The `generation` section of --config, or its defaults, with the command's flags over it."""
    from repro.config import Generation, load_config

    base = load_config(args.config).generation if args.config else Generation()
    flags = {k: getattr(args, k, None) for k in ("backend", "max_new_tokens", "temperature", "top_p", "template",
                                                  "batch_size")}
    return base.model_copy(update={k: v for k, v in flags.items() if v is not None})


def generate(args) -> int:
    from repro.generate.run import run_generation
    from repro.generate.spec import Decoding, GenerationSpec

    g = settings(args)
    spec = GenerationSpec(
        model=args.model, adapter=args.adapter, backend=g.backend,
        decoding=Decoding(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p, seed=args.seed),
        template=g.template, generator=args.generator or Path(args.model).name, batch_size=g.batch_size,
        tensor_parallel=args.tensor_parallel, dtype=args.dtype)
    manifest = run_generation(spec, args.prompts, args.out, limit=args.limit, store=store(args),
                              progress=not args.no_progress)
    print(json.dumps({k: manifest[k] for k in ("prompts", "generated_now", "reused_from_partial")}))
    return 0


def refine(args) -> int:
    from repro.generate.refine import refine_records
    from repro.generate.spec import Decoding, GenerationSpec

    g = settings(args)
    spec = GenerationSpec(model=args.model, adapter=args.adapter, backend=g.backend,
                          decoding=Decoding(max_new_tokens=g.max_new_tokens), batch_size=g.batch_size)
    print(json.dumps(refine_records(spec, args.records, args.out)))
    return 0
