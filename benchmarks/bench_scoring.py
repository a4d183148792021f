"""lm-eval scoring with the shared-context scorer against lm-eval's stock hf backend: tokens computed, wall time and
the largest log-likelihood difference, on the same model and the same requests, in one run.

    REPRO_DATA_MIRROR=../shared/data python benchmarks/bench_scoring.py            # SmolLM2-135M, 8 docs a task
    REPRO_DATA_MIRROR=../shared/data python benchmarks/bench_scoring.py --docs 4 --model tiny

The suite is the paper's (ARC-Challenge 25-shot, HellaSwag 10-shot, MMLU 5-shot on `--subjects` subjects,
TruthfulQA 0-shot). Each backend scores every task's requests `--repeats` times, alternating; medians are
reported. Tokens are those run through the model, padding not counted (the stock backend pads its batches too).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def requests(store, docs: int, subjects: int, tmp: Path) -> dict[str, list]:
    from repro.evaluate.lm_eval_run import write_eval_data
    from repro.evaluate.request_tokens import build_requests

    def first_subjects(name, rows):
        if not name.startswith("mmlu"):
            return rows
        keep = sorted({r["subject"] for r in rows})[:subjects]
        return [r for r in rows if r["subject"] in keep]

    data = write_eval_data(store, tmp, select=first_subjects)
    shots = {"arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0}
    return {task: found["instances"] for task, found in build_requests(data, shots, docs).items()}


def main() -> None:
    from lm_eval.models.huggingface import HFLM

    from repro.data import DataStore
    from repro.evaluate.shared_context import count_tokens
    from repro.evaluate.shared_context_lm import SharedContextLM

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    parser.add_argument("--docs", type=int, default=8, help="documents per task (MMLU: per subject)")
    parser.add_argument("--subjects", type=int, default=4, help="MMLU subjects")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    if args.model == "tiny":
        from repro.models.tiny import build_tiny_model

        model = build_tiny_model(tmp / "model")
    else:
        from repro.models.build import build_smollm2

        model = build_smollm2(tmp / "model")
    by_task = requests(DataStore.from_env(), args.docs, args.subjects, tmp)
    settings = dict(pretrained=str(model), dtype="float32", device="cpu", batch_size=args.batch_size)
    backends = {"stock": HFLM(**settings), "shared": SharedContextLM(**settings)}
    rows = []
    for task, instances in by_task.items():
        times = {name: [] for name in backends}
        answers = {}
        for _ in range(args.repeats):
            for name, lm in backends.items():
                start = time.perf_counter()
                answers[name] = lm.loglikelihood(instances, disable_tqdm=True)
                times[name].append(time.perf_counter() - start)
        pairs = [backends["shared"]._encode_pair(*i.args) for i in instances]
        counts = count_tokens(pairs, backends["shared"].max_length)
        worst = max(abs(a[0] - b[0]) for a, b in zip(answers["shared"], answers["stock"]))
        stock_s, shared_s = statistics.median(times["stock"]), statistics.median(times["shared"])
        rows.append({"task": task, "requests": len(instances), "stock_tokens": counts["stock"],
                     "shared_tokens": counts["shared"], "token_ratio": counts["stock"] / counts["shared"],
                     "stock_s": stock_s, "shared_s": shared_s, "speedup": stock_s / shared_s,
                     "max_abs_loglik_diff": worst,
                     "greedy_agree": all(a[1] == b[1] for a, b in zip(answers["shared"], answers["stock"]))})
    total = {k: sum(r[k] for r in rows) for k in ("stock_tokens", "shared_tokens", "stock_s", "shared_s")}
    print(f"model {args.model}, {args.docs} documents per task ({args.subjects} MMLU subjects), "
          f"medians of {args.repeats}")
    print("| task | requests | stock tokens | shared tokens | token ratio | stock s | shared s | speed-up | "
          "max |Δ log-lik| |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['requests']} | {r['stock_tokens']:,} | {r['shared_tokens']:,} | "
              f"{r['token_ratio']:.2f}x | {r['stock_s']:.2f} | {r['shared_s']:.2f} | {r['speedup']:.2f}x | "
              f"{r['max_abs_loglik_diff']:.1e} |")
    print(f"| all | | {total['stock_tokens']:,} | {total['shared_tokens']:,} | "
          f"{total['stock_tokens'] / total['shared_tokens']:.2f}x | {total['stock_s']:.2f} | "
          f"{total['shared_s']:.2f} | {total['stock_s'] / total['shared_s']:.2f}x | |")
    print(json.dumps({"rows": rows, "total": total}))


if __name__ == "__main__":
    main()
