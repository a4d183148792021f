"""ROUGE for the summarization task (Table 3): rouge1/2/L/Lsum F-measure x 100, averaged over examples, with
Google's `rouge-score` (the package the released requirements pin). Stemming and the reference field are
settings recorded with the scores. rougeLsum splits summaries on newlines only (no sentence splitter), as
rouge-score and HF `evaluate` do by default."""
from __future__ import annotations

from repro.io import read_jsonl

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge(predictions: list[str], references: list[str], use_stemmer: bool = True) -> dict:
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)
        for key in ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    return {key: 100 * value / len(predictions) for key, value in totals.items()} | {"n": len(predictions)}


def score_files(predictions_path, references_path, reference_field: str = "output", use_stemmer: bool = True) -> dict:
    """ROUGE of generated summaries (`repro generate` JSONL) against prepared records, row by row: the two files
    must hold the same instructions in the same order, and every reference must be non-empty."""
    predictions, references = read_jsonl(predictions_path), read_jsonl(references_path)
    if len(predictions) != len(references):
        raise ValueError(f"{predictions_path} has {len(predictions)} rows but {references_path} has {len(references)}")
    for i, (p, r) in enumerate(zip(predictions, references)):
        for path, row in ((predictions_path, p), (references_path, r)):
            if not isinstance(row.get("instruction"), str):
                raise ValueError(f"{path}, line {i + 1}, field 'instruction': expected text")
        if not isinstance(p.get("output"), str):
            raise ValueError(f"{predictions_path}, line {i + 1}, field 'output': expected the generated text")
        if p["instruction"] != r["instruction"]:
            raise ValueError(f"{predictions_path}, line {i + 1}: instruction differs from {references_path}")
        if not r.get(reference_field):
            raise ValueError(f"{references_path}, line {i + 1}, field '{reference_field}': empty reference")
    scores = rouge([p["output"] for p in predictions], [r[reference_field] for r in references], use_stemmer)
    return {"benchmark": "rouge", **scores, "use_stemmer": use_stemmer, "reference_field": reference_field,
            "predictions": str(predictions_path), "references": str(references_path)}
