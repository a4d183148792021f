"""How far a judge agrees with reference pairwise annotations (e.g. the stored GPT-4 AlpacaEval 1.0 ones).

Both sides are alpaca_eval annotation files: rows with ``instruction``, ``output_1``, ``output_2`` and
``preference`` (1: output_1 wins, 2: output_2 wins, 1.5 or 0: a tie, as alpaca_eval writes them; null or
missing: not annotated, counted and left out). A judge row matches a reference row with the same (instruction,
output_1, output_2); a judge row with the two outputs swapped matches too, its preference mirrored, so a judge that
saw both orders contributes both judgments.

- ``agreement``: the mean over matched judgments of 1 (same preference), 0.5 (one side a tie, the other not) or 0
  (opposite winners); a 95% percentile bootstrap interval over the matched judgments (seeded).
- ``kappa``: Cohen's kappa over the three outcomes (output_1, tie, output_2), exact matches only.
- ``position_bias``: over the items the judge annotated in both orders, the share of its non-tie judgments won by
  the output listed first (output_1); it is the first-shown output only for a judge that does not shuffle the order
  itself (alpaca_eval's annotators do, by default). None when no item was judged in both orders.
- ``length_bias``: over matched judgments with a winner and two outputs of different length (characters), the share
  won by the longer output, for the judge and for the reference.
"""
from __future__ import annotations

import math
from pathlib import Path

from repro.evaluate.bootstrap import bootstrap_mean
from repro.io import read_json

TIE = 1.5
OUTCOMES = (1.0, TIE, 2.0)


def read_annotations(path: str | Path) -> tuple[dict[tuple, float], int]:
    """{(instruction, output_1, output_2): preference} and the number of rows without a preference."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: an annotation file is a JSON list of rows, got {type(rows).__name__}")
    annotated, missing = {}, 0
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}, item {i}: not an object")
        for key in ("instruction", "output_1", "output_2"):
            if not isinstance(row.get(key), str):
                raise ValueError(f"{path}, item {i}, field '{key}': missing or not a string")
        p = row.get("preference")
        if p is None or (isinstance(p, float) and math.isnan(p)):
            missing += 1
            continue
        if isinstance(p, bool) or not isinstance(p, int | float) or p not in (0, 1, 1.5, 2):
            raise ValueError(f"{path}, item {i}, field 'preference': {p!r} is not one of 0, 1, 1.5, 2 (a weighted "
                             "judge's fractional preference cannot be compared outcome by outcome)")
        key = (row["instruction"], row["output_1"], row["output_2"])
        p = TIE if p == 0 else float(p)
        if annotated.get(key, p) != p:
            raise ValueError(f"{path}, item {i}: the same pair is annotated twice with different preferences")
        annotated[key] = p
    return annotated, missing


def _mirror(p: float) -> float:
    return 3.0 - p  # 1 <-> 2, the tie stays


def _score(a: float, b: float) -> float:
    if a == b:
        return 1.0
    return 0.5 if TIE in (a, b) else 0.0


def match(judge: dict[tuple, float], reference: dict[tuple, float]) -> tuple[list[tuple], int]:
    """[(key, judge preference in the reference's order, reference preference)], and the unmatched judge rows."""
    pairs, unmatched = [], 0
    for (instruction, first, second), p in judge.items():
        if (instruction, first, second) in reference:
            key, q = (instruction, first, second), p
        elif (instruction, second, first) in reference:
            key, q = (instruction, second, first), _mirror(p)
        else:
            unmatched += 1
            continue
        pairs.append((key, q, reference[key]))
    return pairs, unmatched


def kappa(pairs: list[tuple]) -> float | None:
    n = len(pairs)
    observed = sum(a == b for _, a, b in pairs) / n
    expected = sum((sum(a == c for _, a, _ in pairs) / n) * (sum(b == c for _, _, b in pairs) / n) for c in OUTCOMES)
    if expected == 1:  # both sides always give the same single outcome
        return 1.0 if observed == 1 else None
    return (observed - expected) / (1 - expected)


def bootstrap_interval(scores: list[float], samples: int, seed: int) -> list[float]:
    return list(bootstrap_mean(scores, samples, seed))


def position_bias(judge: dict[tuple, float]) -> dict:
    """The share of non-tie judgments won by output_1, over items judged in both orders."""
    both = [(k, p) for k, p in judge.items() if (k[0], k[2], k[1]) in judge and k[1] != k[2]]
    decided = [p for _, p in both if p != TIE]
    return {"items_in_both_orders": len(both) // 2, "first_listed_wins": (sum(p == 1.0 for p in decided) / len(decided)
                                                                         if decided else None)}


def length_bias(pairs: list[tuple], side: int) -> float | None:
    """The share of decided judgments (side 1: judge, 2: reference) won by the longer output."""
    wins = [(p == 2.0) == (len(key[2]) > len(key[1])) for key, *prefs in pairs
            for p in [prefs[side - 1]] if p != TIE and len(key[1]) != len(key[2])]
    return sum(wins) / len(wins) if wins else None


def read_references(files: list) -> tuple[dict[tuple, float], int]:
    """Several reference files as one (the same pair twice must agree)."""
    merged, missing = {}, 0
    for path in files:
        rows, gone = read_annotations(path)
        missing += gone
        for key, p in rows.items():
            if merged.get(key, p) != p:
                raise ValueError(f"{path}: a pair of instruction {key[0][:60]!r} is annotated differently in "
                                 "another reference file")
            merged[key] = p
    return merged, missing


def agreement(judge_file: str | Path, reference_files: list, bootstrap: int = 1000, seed: int = 0) -> dict:
    judge, judge_missing = read_annotations(judge_file)
    reference, reference_missing = read_references(reference_files)
    pairs, unmatched = match(judge, reference)
    if not pairs:
        raise ValueError(f"{judge_file} and {', '.join(map(str, reference_files))}: no annotated item in common "
                         f"(matched by instruction, output_1 and output_2; {len(judge)} annotated judge rows, "
                         f"{len(reference)} reference rows)")
    scores = [_score(a, b) for _, a, b in pairs]
    return {
        "judge_annotations": str(judge_file), "reference_annotations": [str(f) for f in reference_files],
        "n": len(pairs), "agreement": sum(scores) / len(scores),
        "agreement_ci95": bootstrap_interval(scores, bootstrap, seed) if bootstrap else None,
        "exact_agreement": sum(a == b for _, a, b in pairs) / len(pairs), "kappa": kappa(pairs),
        "position_bias": position_bias(judge),
        "length_bias": {"judge": length_bias(pairs, 1), "reference": length_bias(pairs, 2)},
        "judge_unmatched": unmatched, "reference_without_judgment": len(reference) - len({k for k, _, _ in pairs}),
        "judge_missing_preference": judge_missing, "reference_missing_preference": reference_missing,
        "ties": "a tie against a winner scores 0.5; 0 and 1.5 are both ties",
        "bootstrap": {"samples": bootstrap, "seed": seed},
    }
