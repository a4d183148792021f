"""ROUGE for the summarization task (Table 3): rouge1/2/L/Lsum F-measure x 100, averaged over examples, with
Google's `rouge-score` (the package the released requirements pin). Stemming and the reference field are
settings recorded with the scores. rougeLsum splits summaries on newlines only (no sentence splitter), as
rouge-score and HF `evaluate` do by default."""
from __future__ import annotations

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
