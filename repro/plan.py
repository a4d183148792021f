"""`repro plan`: what the full reproduction costs, per table and figure, before anything runs.

GPU time = FLOPs / (peak bf16 FLOP/s of the named GPU x an assumed utilisation). FLOPs per token: training
6N (full) or 4N (LoRA: no weight gradients for the frozen base), forward-only scoring 2N, generation 2N per new
token at a lower utilisation (decoding is memory-bound). Token counts come from the real data where the mirror
has it (characters / CHARS_PER_TOKEN) and from stated estimates otherwise. Judge cost = tokens x the judge's
price in the config. Every number is an estimate; the assumptions are printed with it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

GPUS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}  # dense bf16 peak FLOP/s
MFU_TRAIN, MFU_SCORE, MFU_GENERATE = 0.35, 0.35, 0.05
CHARS_PER_TOKEN = 3.8  # Llama-2 tokenizer on English prose, roughly
PARAMS_B = {"tiny": 0.0005, "tiny-llama2": 0.009, "smollm2": 0.135}
ALPACA_EVAL = {"prompts": 805, "new_tokens": 350}  # LLaMA2-chat answers average ~1300 characters
LM_EVAL_TOKENS = {"arc_challenge": 1172 * 4 * 900, "hellaswag": 10042 * 4 * 900, "mmlu": 14042 * 4 * 700,
                  "truthfulqa_mc2": 817 * 8 * 120}  # items x choices x context tokens at the paper's shots
ANNOTATOR = {"input_tokens": 1400, "output_tokens": 60}  # alpaca_eval_gpt4: ~1000-token template + 2 answers
# weighted_alpaca_eval_gpt4_turbo: a shorter template, GPT-4 Turbo's long reference answers, one output token
ANNOTATOR_2 = {"input_tokens": 1700, "output_tokens": 1}
STORED_PAIRS = 1610  # the stored GPT-4 annotations a judge is measured against (`repro judge agreement`)
JUDGMENT = {"input_tokens": 450, "output_tokens": 150}  # Figure 8 prompt + instruction + response, a judgment
FALLBACK_EXAMPLE_TOKENS = {"summarization-train": 700, "summarization-test": 700, "ultrafeedback": 450,
                           "cut-ultrafeedback": 450, "stanford-alpaca": 150}
FALLBACK_ROWS = {"summarization-train": 10827, "ultrafeedback": 4 * 63967, "cut-ultrafeedback": 4000,
                 "summarization-test": 1939}


@dataclass
class RunCost:
    gpu_hours: float
    judge_usd: float


def params_billion(config, model: str) -> float:
    spec = config.models[model]
    if spec.source in ("tiny", "tiny-llama2"):
        return PARAMS_B[spec.source]
    if spec.source == "smollm2-gguf":
        return PARAMS_B["smollm2"]
    match = re.search(r"(\d+(?:\.\d+)?)[bB]", spec.path or model)
    if not match:
        raise ValueError(f"cannot tell the size of model '{model}' ({spec.path}); name it like '13b'")
    return float(match.group(1))


def dataset_tokens(name: str, store, limit: int | None) -> tuple[int, float, bool]:
    """(rows, mean tokens per example, measured?) of a training data set."""
    from repro.data import prepare

    try:
        rows, _ = prepare(name, store)
    except Exception:  # not in the mirror: a stated estimate
        n = FALLBACK_ROWS.get(name, 1000)
        return (min(n, limit) if limit else n), FALLBACK_EXAMPLE_TOKENS.get(name, 400), False
    rows = rows[:limit] if limit else rows
    chars = sum(len(r.get("instruction", "")) + len(r.get("input") or "") + len(r.get("output", ""))
                + len(r.get("judgment") or "") for r in rows)
    return len(rows), chars / max(len(rows), 1) / CHARS_PER_TOKEN + 60, True  # + the template


def plan(config, gpu: str = "H100", store=None) -> dict:
    if gpu not in GPUS:
        raise ValueError(f"unknown GPU '{gpu}'; known: {', '.join(GPUS)}")
    peak = GPUS[gpu]
    cache: dict = {}
    costs: dict[str, RunCost] = {}

    def hours(flops: float, mfu: float) -> float:
        return flops / (peak * mfu) / 3600

    for name, exp in config.experiments.items():
        training = config.experiment_training(name)
        n = params_billion(config, exp.base_model) * 1e9
        if exp.loop:
            rows, per_example, _ = config.online.instructions_per_iteration, 400.0, False
        else:
            if exp.dataset not in cache:
                cache[exp.dataset] = dataset_tokens(exp.dataset, store, config.data.limit)
            rows, per_example, _ = cache[exp.dataset]
            if exp.instructions:  # UltraFeedback: 4 completions per instruction
                rows = min(rows, exp.instructions * 4)
        # CUT negatives run two sequences (Align-N + Misalign); DPO runs chosen + rejected through policy and reference
        # (DPO on UltraFeedback: ~1.5 pairs per completion)
        # KTO: the example and its KL pair, through policy and reference (x2 with refinements as desirable)
        factor = {"cut": 2.0, "dpo": 6.0, "ilf_dpo": 4.0,
                  "kto": 8.0 if training.kto.refinements_as_desirable else 4.0}.get(training.objective, 1.0)
        tokens = rows * per_example * factor * training.epochs
        flops_per_token = (6 if training.finetune == "full" else 4) * n
        gpu_hours = hours(flops_per_token * tokens, MFU_TRAIN)
        judge_usd = 0.0
        if exp.loop:  # the loop also generates and judges its instructions
            gpu_hours += hours(2 * n * rows * ALPACA_EVAL["new_tokens"], MFU_GENERATE)
            judge = config.judges[config.online.loops[exp.loop].judge]
            judge_usd = rows * (JUDGMENT["input_tokens"] * judge.usd_per_1m_input_tokens
                                + JUDGMENT["output_tokens"] * judge.usd_per_1m_output_tokens) / 1e6
        if training.needs_model_refinements:
            gpu_hours += hours(2 * n * rows * 300, MFU_GENERATE)
        costs[name] = RunCost(gpu_hours, judge_usd)
    annotator = config.judges.get("gpt-4")
    annotate_usd = ALPACA_EVAL["prompts"] * (
        ANNOTATOR["input_tokens"] * (annotator.usd_per_1m_input_tokens if annotator else 30.0)
        + ANNOTATOR["output_tokens"] * (annotator.usd_per_1m_output_tokens if annotator else 60.0)) / 1e6
    if config.evaluation.alpaca_eval.judge_model:  # a local judge costs nothing
        annotate_usd = 0.0
    ae2 = config.evaluation.alpaca_eval_2
    if ae2.enabled:  # AlpacaEval 2.0 LC beside 1.0
        annotate_usd += min(ALPACA_EVAL["prompts"], ae2.limit or ALPACA_EVAL["prompts"]) * (
            ANNOTATOR_2["input_tokens"] * ae2.usd_per_1m_input_tokens
            + ANNOTATOR_2["output_tokens"] * ae2.usd_per_1m_output_tokens) / 1e6

    def evaluation(run: str) -> RunCost:
        model = run.removeprefix("base-") if run.startswith("base-") else config.experiments[run].base_model
        n = params_billion(config, model) * 1e9
        generate = hours(2 * n * ALPACA_EVAL["prompts"] * ALPACA_EVAL["new_tokens"], MFU_GENERATE)
        score = hours(2 * n * sum(LM_EVAL_TOKENS.values()), MFU_SCORE)
        return RunCost(generate + score, annotate_usd)

    sections = {}
    for section, mapping in config.report.items():
        runs = sorted({s for s in _sources(mapping) if not s.startswith("stored:")})
        rows = []
        for run in runs:
            train = costs.get(run, RunCost(0.0, 0.0))
            ev = evaluation(run)
            rows.append({"run": run, "train_gpu_h": train.gpu_hours, "eval_gpu_h": ev.gpu_hours,
                         "judge_usd": train.judge_usd + ev.judge_usd})
        sections[section] = rows
    everything = sorted(set(costs) | {r["run"] for rows in sections.values() for r in rows})
    total = {"gpu_hours": sum(costs.get(r, RunCost(0, 0)).gpu_hours + evaluation(r).gpu_hours for r in everything),
             "judge_usd": sum(costs.get(r, RunCost(0, 0)).judge_usd + evaluation(r).judge_usd for r in everything)}
    return {"gpu": gpu, "judge_agreement": judge_agreement_costs(config),
            "assumptions": {"mfu_train": MFU_TRAIN, "mfu_score": MFU_SCORE, "mfu_generate": MFU_GENERATE,
                            "chars_per_token": CHARS_PER_TOKEN, "alpaca_eval": ALPACA_EVAL,
                            "annotator_tokens": ANNOTATOR, "annotator_2_tokens": ANNOTATOR_2,
                            "judgment_tokens": JUDGMENT},
            "sections": sections, "total": total, "runs": len(everything)}


def judge_agreement_costs(config) -> dict:
    """What measuring each configured judge against the stored GPT-4 annotations costs (`repro judge agreement
    --judge NAME`: two judgments per pair, cached), and the local AlpacaEval judge the workflow measures."""
    costs = {name: STORED_PAIRS * 2 * (JUDGMENT["input_tokens"] * spec.usd_per_1m_input_tokens
                                       + JUDGMENT["output_tokens"] * spec.usd_per_1m_output_tokens) / 1e6
             for name, spec in config.judges.items() if spec.kind == "openai"}
    costs |= {name: 0.0 for name, spec in config.judges.items() if spec.kind != "openai"}
    settings = config.evaluation.alpaca_eval
    if settings.judge_model:
        costs["alpaca_eval (local, run by the workflow)"] = 0.0
    return {"pairs": STORED_PAIRS, "judge_usd": costs}


def _sources(mapping: dict) -> set[str]:
    found = set()
    for value in (v for item in mapping.values() for v in (item if isinstance(item, list) else [item])):
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            found |= {v for k, v in value.items() if isinstance(v, str) and k not in ("example",)}
    return found


def format_plan(result: dict) -> str:
    lines = [f"Compute plan on {result['gpu']} (estimates; assumptions: {result['assumptions']})", ""]
    for section, rows in result["sections"].items():
        gpu = sum(r["train_gpu_h"] + r["eval_gpu_h"] for r in rows)
        usd = sum(r["judge_usd"] for r in rows)
        lines.append(f"{section}: {len(rows)} runs, {gpu:,.1f} GPU-hours, judge API ${usd:,.2f}")
        for r in rows:
            lines.append(f"    {r['run']}: train {r['train_gpu_h']:,.2f} h, evaluate {r['eval_gpu_h']:,.2f} h, "
                         f"judge ${r['judge_usd']:,.2f}")
    lines.append("")
    lines.append(f"all {result['runs']} runs of the config (each counted once, incl. sweeps and live loops): "
                 f"{result['total']['gpu_hours']:,.1f} GPU-hours, judge API ${result['total']['judge_usd']:,.2f}")
    agreement = result["judge_agreement"]
    lines.append(f"measuring a judge against GPT-4 on the {agreement['pairs']} stored pairs (repro judge agreement): "
                 + ", ".join(f"{name} ${usd:,.2f}" for name, usd in agreement["judge_usd"].items()))
    return "\n".join(lines)
