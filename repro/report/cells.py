"""Where a reproduced number comes from: a run's score files, or the mirror's stored AlpacaEval annotations.

A cell source is a run name (``base-<model>`` or an experiment; its scores are in runs/<profile>/scores/<run>/)
or ``stored:<model>`` (the GPT-4 annotations stored under alpaca_eval/results/<model>/, AlpacaEval only).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from repro.evaluate.alpaca_eval_run import stored_annotations
from repro.evaluate.winrate import winrate

RANKING = ("arc", "hellaswag", "mmlu", "truthfulqa")
LM_EVAL_KEY = {"arc": "arc_challenge", "hellaswag": "hellaswag", "mmlu": "mmlu", "truthfulqa": "truthfulqa_mc2",
               "generalist_truthfulqa": "truthfulqa_mc2"}
ALPACA_EVAL_2_LC = "alpaca_eval_2_lc"  # AlpacaEval 2.0 length-controlled win rate (not in the paper)
ROUGE_KEY = {"rouge1": "rouge1", "rouge2": "rouge2", "rougeL": "rougeL", "rougeLsum": "rougeLsum",
             "specialist_rougelsum": "rougeLsum"}


@dataclass
class Value:
    value: float | None
    source: str  # run name or stored:<model>
    file: str | None = None  # the score file it was read from
    local_judge: bool = False  # AlpacaEval judged by a local model: not comparable with GPT-4
    generated_data: bool = False  # trained or scored on project-generated schema samples
    stderr: float | None = None  # lm-eval's standard error of a benchmark score (None: not given)


def score_file(runs: Path, source: str, column: str) -> Path | None:
    """The file a column of a run is read from (None: computed, or stored)."""
    if source.startswith("stored:"):
        return None
    if column in LM_EVAL_KEY:
        return runs / "scores" / source / "lm_eval.json"
    if column in ROUGE_KEY:
        return runs / "scores" / source / "rouge.json"
    if column == "alpaca_eval":
        return runs / "scores" / source / "alpaca_eval.json"
    if column == ALPACA_EVAL_2_LC:
        return runs / "scores" / source / "alpaca_eval_2.json"
    if column == "judgments":
        return runs / "experiments" / source / "instances.meta.json"
    return None


def read_value(runs: Path, source: str, column: str, store=None, generated: bool = False) -> Value:
    if source.startswith("stored:"):
        if column != "alpaca_eval":
            raise ValueError(f"'{source}' holds AlpacaEval annotations only, not '{column}'")

        path = store.path("alpaca-eval", stored_annotations(source.removeprefix("stored:")))
        return Value(winrate(json.loads(Path(path).read_text()))["win_rate"], source, str(path))
    path = score_file(runs, source, column)
    if path is None:
        raise ValueError(f"no score file holds column '{column}'")
    if not path.is_file():
        return Value(None, source, str(path), generated_data=generated)
    data = json.loads(path.read_text())
    if column in LM_EVAL_KEY:
        value = data["scores"].get(LM_EVAL_KEY[column])
        stderr = (data.get("stderr") or {}).get(LM_EVAL_KEY[column])
        if value is not None and isinstance(stderr, (int, float)) and math.isfinite(stderr):
            return Value(value, source, str(path), generated_data=generated, stderr=stderr)
    elif column in ROUGE_KEY:
        value = data[ROUGE_KEY[column]]
    elif column == "alpaca_eval":
        if not isinstance(data["win_rate"], (int, float)) or not math.isfinite(data["win_rate"]):
            raise ValueError(f"{path}: win_rate is {data['win_rate']}, not a number a table can show")
        return Value(data["win_rate"], source, str(path), local_judge=bool(data.get("local_judge")),
                     generated_data=generated)
    elif column == ALPACA_EVAL_2_LC:
        value = data["length_controlled_win_rate"]
    else:  # judgments: the judged records an iteration trained from
        value = data["records"]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: '{column}' is {value}, not a number a table can show")
    return Value(value, source, str(path), generated_data=generated)
