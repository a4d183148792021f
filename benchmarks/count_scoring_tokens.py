"""Count the tokens lm-eval scoring computes for the paper's suite (ARC 25-shot, HellaSwag 10-shot, MMLU 5-shot,
TruthfulQA 0-shot; every document) with the LLaMA-2 tokenizer, by the stock hf backend and by the shared-context
scorer, from the real task requests, and write them to repro/calibration/scoring_tokens.json, where `repro plan`
finds them without recounting (about 6 minutes on 2 cores).

    REPRO_DATA_MIRROR=../shared/data python benchmarks/count_scoring_tokens.py
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from repro.check.plan import SEEDED_COUNTS
from repro.config import load_config
from repro.data import DataStore
from repro.data.tokenizer import load_tokenizer
from repro.evaluate.lm_eval_run import write_eval_data
from repro.evaluate.request_tokens import request_key, scoring_tokens
from repro.io import write_json

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    config = load_config(ROOT / "config" / "paper.yaml")
    spec = config.models["llama2-chat-13b"]
    store = DataStore.from_env(config.data.mirror)
    shots = {task: t.num_fewshot for task, t in config.evaluation.lm_eval.tasks.items()}
    data = write_eval_data(store, store.cache / "plan", shots)
    start = time.perf_counter()
    counts = scoring_tokens(data, shots, None, load_tokenizer(spec.tokenizer, store), spec.tokenizer, spec.context)
    seconds = time.perf_counter() - start
    entry = {"key": request_key(data, shots, None, spec.tokenizer, spec.context),
             "what": f"the paper's suite at {shots}, every document, {spec.tokenizer}, window {spec.context}",
             "counts": counts}
    write_json(SEEDED_COUNTS, {"paper-llama-2": entry})
    stock = sum(c["stock"] for c in counts.values())
    shared = sum(c["shared"] for c in counts.values())
    for task, c in counts.items():
        print(f"{task}: {c['documents']} documents, {c['requests']} requests, stock {c['stock']:,} tokens, "
              f"shared {c['shared']:,} ({c['stock'] / c['shared']:.2f}x fewer)")
    print(f"all: stock {stock:,}, shared {shared:,} tokens: {stock / shared:.2f}x fewer ({seconds:.0f} s to count)")
    print(json.dumps({"written": str(SEEDED_COUNTS.relative_to(ROOT))}))


if __name__ == "__main__":
    main()
