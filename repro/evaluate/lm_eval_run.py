"""ARC / HellaSwag / MMLU / TruthfulQA with lm-eval, pinned to the Open LLM Leaderboard v1 settings the paper
followed (paper §5; docs/settings.md): ARC-Challenge 25-shot acc_norm, HellaSwag 10-shot acc_norm, MMLU 5-shot acc
averaged over the 57 subjects without weighting by size, TruthfulQA 0-shot mc2.

Task files are thin YAMLs written at run time that `include:` lm-eval's own task file (prompts and metrics stay
lm-eval's) and point it at the prepared local data. Few-shot sources: ARC train; MMLU dev (first 5, as lm-eval);
HellaSwag's train split (the canonical source) is not in the local mirror, so its few-shot examples are drawn
from the validation split itself, the current item excluded (lm-eval's rule for a shared split) -- a deviation,
recorded with the scores. Provenance (lm-eval version, per-task config and hash, n-shot, seeds) is saved.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path

import yaml

from repro.data import prepare
from repro.io import read_jsonl, sha256_file, write_json, write_jsonl

METRICS = {"arc_challenge": "acc_norm", "hellaswag": "acc_norm", "mmlu": "acc", "truthfulqa_mc2": "acc"}
# the prepared evaluation sets the task files read (data set NAMEs of `repro data prepare`), per task
TASK_DATA = {"arc_challenge": ("arc-challenge-train", "arc-challenge-test"), "hellaswag": ("hellaswag-validation",),
             "truthfulqa_mc2": ("truthfulqa-mc",), "mmlu": ("mmlu-dev", "mmlu-test")}
EVAL_SETS = tuple(name for names in TASK_DATA.values() for name in names)
FEWSHOT_SOURCE = {"arc_challenge": "ARC-Challenge train", "mmlu": "MMLU dev (first n)",
                  "hellaswag": "HellaSwag validation, the current item excluded (train split unavailable)",
                  "truthfulqa_mc2": "none (0-shot; lm-eval's fixed 6-example QA preamble)"}


def write_eval_data(store, folder: str | Path, tasks=None, select=None, overwrite: bool = True) -> dict[str, Path]:
    """The prepared evaluation sets the suite's `tasks` (default: all four) read, as JSONL files in `folder`;
    `select(name, rows)` may subset a set (benchmarks), `overwrite=False` keeps files already there (caches)."""
    folder = Path(folder)
    data = {}
    for name in sorted({n for task in (tasks or TASK_DATA) for n in TASK_DATA[task]}):
        data[name] = folder / f"{name}.jsonl"
        if overwrite or not data[name].is_file():
            rows = prepare(name, store)[0]
            write_jsonl(data[name], select(name, rows) if select else rows)
    return data


def _lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def write_task_files(task_dir: Path, data: dict[str, Path], shots: dict[str, int]) -> list[str]:
    """Write repro_* task YAMLs into task_dir for the tasks in `shots`; return the task names to run."""
    lm = _lm_eval_tasks_dir()
    task_dir.mkdir(parents=True, exist_ok=True)
    names = []

    def dump(name: str, body: dict) -> None:
        (task_dir / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))

    if "arc_challenge" in shots:
        dump("repro_arc_challenge", {
            "include": str(lm / "arc/arc_challenge.yaml"), "task": "repro_arc_challenge", "tag": [],
            "dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": {
                "train": str(data["arc-challenge-train"]), "test": str(data["arc-challenge-test"])}},
            "training_split": "train", "validation_split": None, "test_split": "test",
            "num_fewshot": shots["arc_challenge"]})
        names.append("repro_arc_challenge")
    if "hellaswag" in shots:
        dump("repro_hellaswag", {
            "include": str(lm / "hellaswag/hellaswag.yaml"), "task": "repro_hellaswag", "tag": [],
            "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {"validation": str(data["hellaswag-validation"])}},
            "training_split": None, "validation_split": "validation", "fewshot_split": "validation",
            "num_fewshot": shots["hellaswag"]})
        names.append("repro_hellaswag")
    if "truthfulqa_mc2" in shots:
        dump("repro_truthfulqa_mc2", {
            "include": str(lm / "truthfulqa/truthfulqa_mc2.yaml"), "task": "repro_truthfulqa_mc2", "tag": [],
            "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {"validation": str(data["truthfulqa-mc"])}},
            "num_fewshot": shots["truthfulqa_mc2"]})
        names.append("repro_truthfulqa_mc2")
    if "mmlu" in shots:
        by_subject: dict[str, dict[str, list]] = defaultdict(lambda: {"dev": [], "test": []})
        for split in ("dev", "test"):
            for row in read_jsonl(data[f"mmlu-{split}"]):
                by_subject[row["subject"]][split].append(row)
        subtasks = []
        for subject, splits in sorted(by_subject.items()):
            files = {}
            for split, rows in splits.items():
                files[split] = task_dir / "mmlu_data" / f"{subject}_{split}.jsonl"
                write_jsonl(files[split], rows)
            task = f"repro_mmlu_{subject}"
            dump(task, {
                "include": str(lm / "mmlu/default/_default_template_yaml"), "task": task, "dataset_path": "json",
                "dataset_name": None, "dataset_kwargs": {"data_files": {k: str(v) for k, v in files.items()}},
                "description": f"The following are multiple choice questions (with answers) about "
                               f"{subject.replace('_', ' ')}.\n\n", "num_fewshot": shots["mmlu"]})
            subtasks.append(task)
        dump("repro_mmlu", {"group": "repro_mmlu", "task": subtasks,
                            "aggregate_metric_list": [{"metric": "acc", "weight_by_size": False}],
                            "metadata": {"version": 1}})
        names.append("repro_mmlu")
    return names


# `evaluation.lm_eval.backend` -> lm-eval's model name. `shared` is lm-eval's hf backend computing each shared
# context once (repro/evaluate/shared_context.py): the same log-likelihoods in a fraction of the tokens.
LM_EVAL_MODELS = {"hf": "hf", "shared": "repro_shared", "vllm": "vllm"}


def run_lm_eval(model: str, out: str | Path, data: dict[str, Path], shots: dict[str, int],
                adapter: str | None = None, backend: str = "shared", limit: int | None = None, batch_size: int = 8,
                device: str = "cpu", dtype: str = "auto", tensor_parallel: int = 1, log_samples: bool = True,
                cache: bool = True) -> dict:
    """Score `model` (+ `adapter`) on the tasks of `data` and write `out`: point scores and standard errors
    (x100), with lm-eval's own results and per-sample logs under `<out>.lm_eval/` (its EvaluationTracker
    layout) and its request cache under `<out>.cache/`, keyed by the model, adapter and task files, so a killed
    job answers the requests it already computed from the cache when rerun."""
    import lm_eval
    from lm_eval.api.registry import get_model
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    if backend == "shared":
        import repro.evaluate.shared_context_lm  # noqa: F401  (registers repro_shared with lm-eval)

    out = Path(out)
    task_dir = out.with_name(out.stem + ".tasks")
    names = write_task_files(task_dir, data, shots)
    args = model_args(model, adapter, backend, dtype, tensor_parallel)
    # only our task files are indexed (lm-eval's thousands of defaults cost ~10 s; ours include theirs by path)
    tasks = TaskManager(include_path=str(task_dir), include_defaults=False)
    lm = get_model(LM_EVAL_MODELS[backend]).create_from_arg_string(args, {"batch_size": batch_size, "device": device})
    cache_db = _cache_prefix(out, model, adapter, args, task_dir) if cache else None
    outputs = out.with_name(out.stem + ".lm_eval")  # lm-eval's own results and per-sample logs
    tracker = EvaluationTracker(output_path=str(outputs)) if log_samples else None
    results = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=tasks, limit=limit, log_samples=log_samples,
                                      use_cache=cache_db, evaluation_tracker=tracker)
    if tracker is not None:  # lm-eval's own layout: results_<date>.json and samples_<task>_<date>.jsonl
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for task in samples:
            tracker.save_results_samples(task_name=task, samples=samples[task])
    scores, stderr = {}, {}
    for task, metric in METRICS.items():
        name = f"repro_{task}"
        if name in results["results"]:
            scores[task] = 100 * float(results["results"][name][f"{metric},none"])
            stderr[task] = _stderr(results["results"][name].get(f"{metric}_stderr,none"))
    if len(scores) == 4:
        scores["avg"] = sum(scores.values()) / 4  # the paper's Avg. column
    payload = {
        "benchmark": "lm_eval", "scores": scores, "stderr": stderr, "metrics": {t: METRICS[t] for t in shots},
        "num_fewshot": shots, "fewshot_source": {t: FEWSHOT_SOURCE[t] for t in shots}, "limit": limit,
        "model": model, "adapter": adapter, "backend": backend,
        "tokens_computed": getattr(lm, "tokens_computed", None), "cache": cache_db and f"{cache_db}_rank0.db",
        "lm_eval_outputs": str(outputs) if log_samples else None,
        "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else None,
        "n_samples": results.get("n-samples"),
        "task_files_sha256": {p.stem: sha256_file(p) for p in sorted(task_dir.glob("*.yaml"))},
        "data_sha256": {name: sha256_file(path) for name, path in sorted(data.items())},
        "versions": results.get("versions"), "n_shot": results.get("n-shot"),
        "configs": json.loads(json.dumps(results.get("configs"), default=str)),
        "seeds": {k: results["config"].get(k) for k in ("random_seed", "numpy_seed", "torch_seed",
                                                        "fewshot_seed")},
        "git_hash": results.get("git_hash"), "date": results.get("date"),
    }
    write_json(out, payload)
    return payload


def _stderr(value) -> float | None:
    """lm-eval's standard error, x100 like the scores; None where it gives none ('N/A', a group without one)."""
    try:
        value = 100 * float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _cache_prefix(out: Path, model: str, adapter: str | None, args: str, task_dir: Path) -> str:
    """lm-eval's request cache for these weights and tasks: a retrained adapter or changed task files get a new
    one (lm-eval keys its cache by request alone)."""
    parts = {"model_args": args, "tasks": {p.name: sha256_file(p) for p in sorted(task_dir.glob("*.yaml"))},
             "model": _weights_identity(model), "adapter": adapter and _weights_identity(adapter)}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return str(out.with_name(out.stem + ".cache") / key)


def _weights_identity(path: str) -> dict | str:
    """A local folder's weight files by name, size and modification time (hashing 26 GB would take minutes);
    a hub id as itself."""
    folder = Path(path)
    if not folder.is_dir():
        return path
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.iterdir())
            if p.suffix in (".safetensors", ".bin", ".pt") or p.name.endswith(".json")}


def model_args(model: str, adapter: str | None, backend: str, dtype: str = "auto", tensor_parallel: int = 1) -> str:
    """lm-eval's model_args: the hf backends apply a peft adapter and spread a model over several GPUs with
    `parallelize`; the vllm backend serves an adapter as a LoRA request (`peft=` there would reach vLLM's engine
    as an unknown argument) and splits the model with tensor parallelism."""
    args = f"pretrained={model},dtype={dtype}"
    if backend == "vllm":
        if adapter:
            args += f",lora_local_path={adapter},max_lora_rank={_rank(adapter)}"
        return args + (f",tensor_parallel_size={tensor_parallel}" if tensor_parallel > 1 else "")
    if adapter:
        args += f",peft={adapter}"
    return args + (",parallelize=True" if tensor_parallel > 1 else "")


def _rank(adapter: str) -> int:
    from repro.generate.backends import VLLM_LORA_RANKS

    rank = json.loads((Path(adapter) / "adapter_config.json").read_text())["r"]
    return next(r for r in VLLM_LORA_RANKS if r >= rank)
