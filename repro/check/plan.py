"""`repro plan`: what the full reproduction costs, per table and figure, before anything runs.

Each run is charged its training and what its cells show (repro/report/needs.py): AlpacaEval generation and
judge, each lm-eval task it appears under, ROUGE's summaries. GPU time comes from FLOPs and the measured GPU
calibration (repro/calibration/<GPU>.yaml): training FLOPs per token 6N (full) or 4N (LoRA), at the MFU measured
for the nearest configuration times the stated factors for what that measurement lacked (gradient
checkpointing, 8-bit weights); forward-only scoring and prompt prefill at 2N per token at the scoring MFU;
decoding as memory-bound (each step at batch 16 reads the bf16 weights at a fraction of the bandwidth).
lm-eval tokens are counted from the real task requests with the model's tokenizer
(repro/evaluate/request_tokens.py), as the configured backend computes them. Judge cost = tokens x the judge's
price in the config. Every figure says whether it rests on a measurement or an extrapolation.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from repro import calibration
from repro.calibration import Figure
from repro.data import DataStore, prepare
from repro.data.tokenizer import load_tokenizer
from repro.evaluate.lm_eval_run import write_eval_data
from repro.evaluate.request_tokens import scoring_tokens
from repro.report.needs import run_needs

CHARS_PER_TOKEN = 3.8  # Llama-2 tokenizer on English prose, roughly
TEMPLATE_TOKENS, JUDGMENT_TEMPLATE_TOKENS = 60, 10  # the Alpaca-style template, and what the judgment prompt adds
PARAMS_B = {"tiny": 0.0005, "tiny-llama2": 0.009, "smollm2": 0.135}
DECODE_BATCH = 16
# AlpacaEval generation: 805 prompts of 42 + ~40 template tokens; answers of ~400 new tokens (the stored cut-13b
# outputs average 416 LLaMA-2 tokens, llama-2-13b-chat's 374)
ALPACA_EVAL = {"prompts": 805, "prompt_tokens": 82, "new_tokens": 400}
SUMMARIZATION = {"prompt_tokens": 700, "new_tokens": 120}  # a post of ~600 tokens and a short summary (estimate)
# alpaca_eval_gpt4 per pair: its template (337 LLaMA-2 tokens) + instruction (42) + reference (127) + output
# (~400) = ~900 (GPT-4's tokenizer gives fewer); a ranking of ~60 tokens out
ANNOTATOR = {"input_tokens": 900, "output_tokens": 60}
# weighted_alpaca_eval_gpt4_turbo: a shorter template, GPT-4 Turbo's long reference answers, one output token
ANNOTATOR_2 = {"input_tokens": 1700, "output_tokens": 1}
STORED_PAIRS = 1610  # the stored GPT-4 annotations a judge is measured against (`repro judge agreement`)
JUDGMENT = {"input_tokens": 450, "output_tokens": 150}  # Figure 8 prompt + instruction + response, a judgment
REFINEMENT_TOKENS = 300  # an ILF refinement written by the starting model
LOOP_NEW_TOKENS = 350  # an answer generated in an online iteration
# lm-eval tokens per item at the paper's shots when they cannot be counted (no tokenizer or data): the stock
# backend's counts on the LLaMA-2 tokenizer divided by the items (repro/calibration/scoring_tokens.json)
FALLBACK_EXAMPLE_TOKENS = {"summarization-train": 700, "summarization-test": 700, "ultrafeedback": 450,
                           "cut-ultrafeedback": 450, "stanford-alpaca": 150}
FALLBACK_ROWS = {"summarization-train": 10827, "ultrafeedback": 4 * 63967, "cut-ultrafeedback": 4000,
                 "summarization-test": 1939}
SEEDED_COUNTS = Path(calibration.HERE) / "scoring_tokens.json"


@dataclass
class Cost:
    gpu_hours: float = 0.0
    judge_usd: float = 0.0
    measured: bool = True  # every GPU figure behind it measured (False: something extrapolated)
    parts: dict = field(default_factory=dict)

    def add(self, name: str, hours: float, figure: Figure | None = None, usd: float = 0.0) -> None:
        if hours or usd:
            self.parts[name] = self.parts.get(name, 0.0) + hours
            self.gpu_hours += hours
            self.judge_usd += usd
            if figure is not None and hours:
                self.measured &= figure.measured


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


@dataclass(frozen=True)
class DataStats:
    """What a training set's records cost: counts and mean tokens of their parts (characters / CHARS_PER_TOKEN)."""
    negatives: int
    positives: int
    base: float  # a negative's plain prompt with its response: the template, instruction, input and output
    judgment: float  # what a judgment adds to a sequence (its text and the judgment template)
    positive_base: float  # the same for a positive
    measured: bool  # from the records (False: the stated estimate for a data set the mirror lacks)

    @property
    def rows(self) -> int:
        return self.negatives + self.positives


def dataset_stats(name: str, store, limit: int | None) -> DataStats:

    try:
        rows, _ = prepare(name, store)
    except Exception:  # not in the mirror: a stated estimate (all records judged negative)
        n = FALLBACK_ROWS.get(name, 1000)
        base = FALLBACK_EXAMPLE_TOKENS.get(name, 400)
        return DataStats(min(n, limit) if limit else n, 0, base, 0.15 * base, base, False)
    rows = rows[:limit] if limit else rows
    negatives = [r for r in rows if r.get("judgment")]
    positives = [r for r in rows if not r.get("judgment")]

    def mean(parts, of) -> float:
        return sum(len(r.get(p) or "") for r in of for p in parts) / max(len(of), 1) / CHARS_PER_TOKEN

    text = ("instruction", "input", "output")
    return DataStats(len(negatives), len(positives), mean(text, negatives) + TEMPLATE_TOKENS,
                     mean(("judgment",), negatives) + JUDGMENT_TEMPLATE_TOKENS, mean(text, positives) + TEMPLATE_TOKENS,
                     True)


def training_sequences(stats: DataStats, training, instructions: int | None) -> float:
    """Tokens one epoch runs forward and backward through the model (reference-model and no-gradient forwards
    count half: 2N of the 4N a LoRA token costs), from how each objective turns a record into sequences."""
    negatives, positives = stats.negatives, stats.positives
    if instructions:  # UltraFeedback: 4 completions per instruction
        scale = min(1.0, instructions * 4 / max(stats.rows, 1))
        negatives, positives = negatives * scale, positives * scale
    if training.downsample is not None and training.objective != "ai_judge":
        positives = min(positives, int(negatives * training.downsample))  # released Align-P downsampling
    base, judged, plain = stats.base, stats.base + stats.judgment, stats.positive_base
    objective = training.objective
    if objective == "cut":  # Align-N and Misalign for a negative, Align-P for a positive
        return negatives * (judged + base) + positives * plain
    if objective in ("hindsight", "ai_judge"):
        return negatives * judged + positives * plain
    if objective == "forward_prediction":
        return negatives * judged + positives * plain
    if objective == "ilf_mle":
        return negatives * base + positives * plain
    if objective == "ilf_dpo":  # chosen and rejected: policy forward+backward, reference forward
        return negatives * 2 * base * 1.5
    if objective == "dpo":  # ~1.5 pairs per completion (UltraFeedback score pairs)
        return (negatives * base + positives * plain) * 1.5 * 2 * 1.5
    if objective == "kto":  # the example (policy), its KL completion (policy, no gradient), both under the reference
        per = 1 + 0.5 + 0.5 + 0.5
        return (negatives * base + positives * plain) * per * (2 if training.kto.refinements_as_desirable else 1)
    raise ValueError(f"no token model for objective '{objective}'")


class Planner:
    """FLOPs and tokens -> GPU-hours on one GPU kind, each figure with its provenance."""

    def __init__(self, config, gpu: str, store=None):
        self.config, self.store = config, store
        self.gpu = calibration.load(gpu)
        self.score_mfu = self.gpu.phases["score"]
        self.decode = self.gpu.phases["decode"]
        self._scoring: dict[str, tuple[dict, str]] = {}
        self._data: dict[str, DataStats] = {}

    def hours(self, flops: float, mfu: Figure) -> float:
        return flops / (self.gpu.peak_flops * mfu.value) / 3600

    def generation(self, n: float, prompts: int, prompt_tokens: float, new_tokens: float) -> float:
        """Prefill at the scoring MFU, then decoding at DECODE_BATCH, each step reading the bf16 weights."""
        prefill = self.hours(2 * n * prompts * prompt_tokens, self.score_mfu)
        steps = prompts * new_tokens / DECODE_BATCH
        decode = steps * 2 * n / (self.gpu.bandwidth * self.decode.value) / 3600
        return prefill + decode

    def train(self, name: str) -> Cost:
        config = self.config
        exp, training = config.experiments[name], config.experiment_training(name)
        n = params_billion(config, exp.base_model) * 1e9
        if exp.loop:  # a live iteration's judged answers: assume a third approved, as in the replayed iterations
            rows = config.online.instructions_per_iteration
            stats = DataStats(rows * 2 // 3, rows - rows * 2 // 3, 400.0, 80.0, 400.0, False)
        else:
            if exp.dataset not in self._data:
                self._data[exp.dataset] = dataset_stats(exp.dataset, self.store, config.data.limit)
            stats = self._data[exp.dataset]
            rows = stats.rows
        tokens = training_sequences(stats, training, exp.instructions) * training.epochs
        mfu = self.gpu.train_mfu(training.finetune, training.gradient_checkpointing, training.load_in_8bit)
        cost = Cost()
        cost.add("train", self.hours((6 if training.finetune == "full" else 4) * n * tokens, mfu), mfu)
        if exp.loop:  # the loop also generates and judges its instructions
            cost.add("loop generation", self.generation(n, rows, ALPACA_EVAL["prompt_tokens"], LOOP_NEW_TOKENS),
                     self.decode)
            judge = config.judges[config.online.loops[exp.loop].judge]
            cost.judge_usd += rows * (JUDGMENT["input_tokens"] * judge.usd_per_1m_input_tokens
                                      + JUDGMENT["output_tokens"] * judge.usd_per_1m_output_tokens) / 1e6
        if training.needs_model_refinements:
            cost.add("refinements", self.generation(n, rows, stats.base, REFINEMENT_TOKENS), self.decode)
        return cost

    def evaluate(self, run: str, metrics: set[str]) -> Cost:
        config = self.config
        model = run.removeprefix("base-") if run.startswith("base-") else config.experiments[run].base_model
        n = params_billion(config, model) * 1e9
        cost = Cost()
        alpaca = config.evaluation.alpaca_eval
        prompts = min(ALPACA_EVAL["prompts"], alpaca.limit or ALPACA_EVAL["prompts"])
        if metrics & {"alpaca_eval", "alpaca_eval_2"}:
            cost.add("alpaca_eval generation",
                     self.generation(n, prompts, ALPACA_EVAL["prompt_tokens"], ALPACA_EVAL["new_tokens"]),
                     self.decode)
        if "alpaca_eval" in metrics and not alpaca.judge_model:  # a local judge costs no API money
            annotator = config.judges.get("gpt-4")
            cost.judge_usd += prompts * (
                ANNOTATOR["input_tokens"] * (annotator.usd_per_1m_input_tokens if annotator else 30.0)
                + ANNOTATOR["output_tokens"] * (annotator.usd_per_1m_output_tokens if annotator else 60.0)) / 1e6
        if "alpaca_eval_2" in metrics:
            ae2 = config.evaluation.alpaca_eval_2
            cost.judge_usd += min(prompts, ae2.limit or prompts) * (
                ANNOTATOR_2["input_tokens"] * ae2.usd_per_1m_input_tokens
                + ANNOTATOR_2["output_tokens"] * ae2.usd_per_1m_output_tokens) / 1e6
        tasks = [t for t in config.evaluation.lm_eval.tasks if t in metrics]
        if tasks:
            counts, _ = self.scoring_tokens(model)
            key = "shared" if config.evaluation.lm_eval.backend == "shared" else "stock"
            for task in tasks:
                cost.add(f"lm-eval {task}", self.hours(2 * n * counts[task][key], self.score_mfu), self.score_mfu)
        if "rouge" in metrics:
            rows = dataset_stats("summarization-test", self.store, None).rows
            cost.add("summaries", self.generation(n, rows, SUMMARIZATION["prompt_tokens"],
                                                  SUMMARIZATION["new_tokens"]), self.decode)
        return cost

    def scoring_tokens(self, model: str) -> tuple[dict, str]:
        """lm-eval tokens by task and backend for a model's tokenizer, and how they were obtained."""
        spec = self.config.models[model]
        tokenizer = spec.tokenizer or spec.path or model
        if tokenizer not in self._scoring:
            self._scoring[tokenizer] = count_scoring_tokens(self.config, model, self.store)
        return self._scoring[tokenizer]


def count_scoring_tokens(config, model: str, store) -> tuple[dict, str]:
    """lm-eval tokens by task, counted from the real requests with the model's tokenizer source (cached; the
    paper's counts are seeded in repro/calibration/scoring_tokens.json). CPU profiles, models without a tokenizer
    source and data that cannot be had take the LLaMA-2 counts at the paper's shots, scaled per document."""
    settings, spec = config.evaluation.lm_eval, config.models[model]
    shots = {task: t.num_fewshot for task, t in settings.tasks.items()}
    reason = "a CPU profile" if config.device == "cpu" else None if spec.tokenizer else f"{model} names no tokenizer"
    if reason is None:
        store = store or DataStore.from_env(config.data.mirror)
        try:
            tokenizer = load_tokenizer(spec.tokenizer, store)
            data = write_eval_data(store, store.cache / "plan", shots, overwrite=False)
            counts = scoring_tokens(data, shots, settings.limit, tokenizer, spec.tokenizer, spec.context or 4096,
                                    cache_dir=store.cache / "plan", seeds=SEEDED_COUNTS)
            return counts, f"counted from the real requests with {spec.tokenizer}"
        except Exception as err:  # the data or the tokenizer cannot be had here
            reason = f"{type(err).__name__}: {err}"
    paper = json.loads(SEEDED_COUNTS.read_text())["paper-llama-2"]
    counts = {task: _scaled(paper["counts"][task], settings.limit) for task in shots}
    return counts, f"the paper's LLaMA-2 counts per document stand in ({reason})"


def _scaled(counts: dict, limit: int | None) -> dict:
    """Token counts for `limit` documents per (sub)task, from the counts of all of them."""
    if limit is None:
        return counts
    share = min(1.0, limit * counts["subtasks"] / counts["documents"])
    return {k: v * share for k, v in counts.items() if k in ("stock", "shared")}


def plan(config, gpu: str = "H100", store=None) -> dict:

    planner = Planner(config, gpu, store)
    needs = run_needs(config)
    training = {name: planner.train(name) for name in config.experiments}
    evaluation = {run: planner.evaluate(run, metrics) for run, metrics in needs.items()}
    sections = {}
    for section, mapping in config.report.items():
        runs = sorted({s for s in _sources(mapping) if not s.startswith("stored:")})
        sections[section] = [_row(run, training.get(run, Cost()), evaluation.get(run, Cost()), needs.get(run, set()))
                             for run in runs]
    everything = sorted(set(training) | set(evaluation))
    costs = [c for run in everything for c in (training.get(run), evaluation.get(run)) if c]
    total = {"gpu_hours": sum(c.gpu_hours for c in costs), "judge_usd": sum(c.judge_usd for c in costs),
             "measured": all(c.measured for c in costs)}
    by_part: dict[str, float] = {}
    for c in costs:
        for part, hours in c.parts.items():
            key = "lm-eval" if part.startswith("lm-eval") else part
            by_part[key] = by_part.get(key, 0.0) + hours
    tokenizers = {t: how for t, (_, how) in planner._scoring.items()}
    return {"gpu": gpu, "judge_agreement": judge_agreement_costs(config),
            "figures": _figures(planner, config), "scoring_tokens": tokenizers,
            "assumptions": {"chars_per_token": CHARS_PER_TOKEN, "alpaca_eval": ALPACA_EVAL,
                            "summarization": SUMMARIZATION, "decode_batch": DECODE_BATCH,
                            "annotator_tokens": ANNOTATOR, "annotator_2_tokens": ANNOTATOR_2,
                            "judgment_tokens": JUDGMENT},
            "sections": sections, "total": total, "by_part": by_part, "runs": len(everything)}


def _row(run: str, train: Cost, ev: Cost, metrics: set[str]) -> dict:
    return {"run": run, "train_gpu_h": train.gpu_hours, "eval_gpu_h": ev.gpu_hours,
            "judge_usd": train.judge_usd + ev.judge_usd, "metrics": sorted(metrics),
            "train_measured": train.measured, "eval_measured": ev.measured}


def _figures(planner: Planner, config) -> dict[str, str]:
    """Each GPU figure the plan uses, with its provenance."""
    figures = {"scoring MFU": planner.score_mfu, "decoding bandwidth efficiency": planner.decode}
    for name in config.experiments:
        t = config.experiment_training(name)
        key = f"training MFU ({t.finetune}{', checkpointing' if t.gradient_checkpointing else ''}" \
              f"{', 8-bit' if t.load_in_8bit else ''})"
        figures.setdefault(key, planner.gpu.train_mfu(t.finetune, t.gradient_checkpointing, t.load_in_8bit))
    return {k: f"{v.value:.3g} ({v.label})" for k, v in figures.items()}


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


def _mark(measured: bool) -> str:
    return "m" if measured else "x"


def format_plan(result: dict) -> str:
    lines = [f"Compute plan on {result['gpu']}. [m] rests on measurements only, [x] on an extrapolation "
             "somewhere (the figures below say which).", "", "GPU figures:"]
    lines += [f"    {name}: {text}" for name, text in result["figures"].items()]
    lines += [f"    lm-eval tokens ({tok}): {how}" for tok, how in result["scoring_tokens"].items()]
    lines += [f"Estimates: {result['assumptions']}", ""]
    for section, rows in result["sections"].items():
        gpu = sum(r["train_gpu_h"] + r["eval_gpu_h"] for r in rows)
        usd = sum(r["judge_usd"] for r in rows)
        lines.append(f"{section}: {len(rows)} runs, {gpu:,.1f} GPU-hours, judge API ${usd:,.2f}")
        for r in rows:
            shows = ", ".join(r["metrics"]) or "nothing scored"
            lines.append(f"    {r['run']}: train {r['train_gpu_h']:,.2f} h [{_mark(r['train_measured'])}], evaluate "
                         f"{r['eval_gpu_h']:,.2f} h [{_mark(r['eval_measured'])}], judge ${r['judge_usd']:,.2f} "
                         f"({shows})")
    total = result["total"]
    lines.append("")
    lines.append(f"all {result['runs']} runs of the config (each counted once, incl. sweeps and live loops): "
                 f"{total['gpu_hours']:,.1f} GPU-hours [{_mark(total['measured'])}], judge API "
                 f"${total['judge_usd']:,.2f}")
    lines.append("    by part: " + ", ".join(f"{k} {v:,.1f} h" for k, v in sorted(result["by_part"].items(),
                                                                                  key=lambda kv: -kv[1])))
    agreement = result["judge_agreement"]
    lines.append(f"measuring a judge against GPT-4 on the {agreement['pairs']} stored pairs (repro judge agreement): "
                 + ", ".join(f"{name} ${usd:,.2f}" for name, usd in agreement["judge_usd"].items()))
    return "\n".join(lines)
