"""Run a judge on stored annotated pairs and measure it against them (`repro judge agreement --judge NAME`).

Two kinds of judge can be measured:

- a key of the config's ``judges`` (Figure 8 prompt through an OpenAI-compatible API or a local model, or an AI
  judge): it judges each output of a pair alone, through the judgment cache like every judgment (a rerun pays
  nothing); the pair's preference follows from the two verdicts: the positive one wins, two equal verdicts tie.
  Such a judge never sees the two outputs together, so it has no position bias to measure.
- ``alpaca_eval``: the profile's AlpacaEval annotator (``evaluation.alpaca_eval``: GPT-4, or a local pairwise
  judge), through alpaca_eval with its annotation cache, exactly as the runs are scored.
"""
from __future__ import annotations

import json
from pathlib import Path

from repro.evaluate.alpaca_eval_run import evaluate_alpaca_eval
from repro.io import write_json
from repro.judge.agreement import TIE, agreement, read_references
from repro.judge.cache import JudgmentCache
from repro.judge.run import judge_rows, make_judge

ALPACA_EVAL_JUDGE = "alpaca_eval"


def reference_pairs(files: list, limit: int | None) -> list[tuple]:
    """The annotated (instruction, output_1, output_2) of the reference files, in file order, the first `limit`."""
    pairs = list(read_references(files)[0])
    return pairs[:limit] if limit is not None else pairs


def verdict_preferences(name: str, config, pairs: list[tuple], cache_path: Path, model_path=None, adapter=None,
                        backend=None) -> tuple[list[float], dict]:
    _, judge = make_judge(name, config, model_path, adapter, backend)
    rows = [{"instruction": i, "output": o} for i, first, second in pairs for o in (first, second)]
    try:
        judged, summary = judge_rows(name, judge, rows, JudgmentCache(cache_path), "stored pairs")
    finally:
        if hasattr(judge, "close"):
            judge.close()
    verdicts = [r["positive"] for r in judged]
    return [TIE if a == b else (1.0 if a else 2.0) for a, b in zip(verdicts[::2], verdicts[1::2])], summary


def annotator_preferences(config, pairs: list[tuple], work: Path, judge_model=None) -> list:
    """The profile's AlpacaEval annotator on the pairs, output_1 as its reference and output_2 as the model's.
    alpaca_eval keys references by instruction, so pairs sharing an instruction go to separate calls."""
    settings = config.evaluation.alpaca_eval
    groups: list[list[tuple]] = []
    for pair in pairs:
        group = next((g for g in groups if all(p[0] != pair[0] for p in g)), None)
        if group is None:
            groups.append(group := [])
        group.append(pair)
    found = {}
    for k, group in enumerate(groups):
        outputs, references = work / f"group{k}.outputs.json", work / f"group{k}.reference.json"
        write_json(outputs, [{"instruction": i, "output": b, "generator": "judged"} for i, _, b in group])
        write_json(references, [{"instruction": i, "output": a, "generator": "reference"} for i, a, _ in group])
        evaluate_alpaca_eval(outputs, references, work / f"group{k}.json", work / "cache", settings.annotator,
                             settings.version, judge_model=judge_model)
        for row in json.loads((work / f"group{k}.annotations.json").read_text()):
            found[(row["instruction"], row["output_1"], row["output_2"])] = row.get("preference")
    return [found.get(pair) for pair in pairs]


def judge_agreement(name: str, config, reference_files: list, out: str | Path, limit: int | None = None,
                    cache: str | Path | None = None, model_path=None, adapter=None, backend=None,
                    bootstrap: int = 1000, seed: int = 0) -> dict:
    out = Path(out)
    work = out.with_name(out.stem + ".work")
    work.mkdir(parents=True, exist_ok=True)
    pairs = reference_pairs(reference_files, limit)
    if not pairs:
        raise ValueError(f"{', '.join(map(str, reference_files))}: no annotated pair to judge")
    if name == ALPACA_EVAL_JUDGE:
        preferences = annotator_preferences(config, pairs, work, model_path)
        who = {"judge": name, "annotator": config.evaluation.alpaca_eval.annotator,
               "judge_model": config.evaluation.alpaca_eval.judge_model}
    else:
        preferences, judging = verdict_preferences(name, config, pairs, Path(cache or work / "judgments.cache.jsonl"),
                                                   model_path, adapter, backend)
        who = {"judge": name, "kind": config.judges[name].kind, "model": config.judges[name].model,
               "preference_from": "the two outputs judged alone: the positive one wins, equal verdicts tie",
               "judging": judging}
    annotations = out.with_name(out.stem + ".annotations.json")
    write_json(annotations, [{"instruction": i, "output_1": a, "output_2": b, "preference": p, "annotator": name}
                             for (i, a, b), p in zip(pairs, preferences)])
    result = {**who, "pairs_judged": len(pairs), **agreement(annotations, reference_files, bootstrap, seed)}
    write_json(out, result)
    return result
