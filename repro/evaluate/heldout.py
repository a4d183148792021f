"""Held-out judgment test: does training on judgments change what a model believes about answers it never saw?

A seeded split keeps items of a training data set out of every run's training. Each item has an instruction and a
`chosen` and/or `rejected` answer (Shepherd: the human-corrected answer and the criticised one; an online
iteration: a GPT-4-approved answer or a criticised one, with its judgment). Per run, under the plain prompt (the
paper's template without judgment, prompt masked, EOS appended: the tokens training sees for Align-P):

- the per-token mean log-likelihood (natural log) of each answer;
- preference accuracy (items with both answers: the share where the chosen answer's mean exceeds the rejected
  one's), or the AUC of the means separating chosen from rejected answers (items with one answer each);
- blamed-token log-probability: the mean log p of the rejected answer's tokens that Eq. 5 flags under the *base*
  model (judgment prompt vs plain prompt, p_judgment / p_plain > lambda), flags computed once (`blame`);
- collateral: the mean per-token log-likelihood of the chosen answers.

Runs are compared with the base by a paired bootstrap over items (`compare`).
"""
from __future__ import annotations

import random
from pathlib import Path

import torch

from repro.cut.collate import Example, collate, encode, pad_id
from repro.cut.hidden import target_logprobs
from repro.cut.loss import flag_tokens
from repro.data.records import FieldReader
from repro.data.templates import judgment_prompt, plain_prompt
from repro.errors import DataError
from repro.evaluate.bootstrap import percentile_interval
from repro.io import progress
from repro.models.load import load_causal_lm, with_adapter

MEASURES = ("preference_accuracy", "auc", "blamed_logprob", "collateral")


# ------------------------------------------------------------------------------------------------- the items

def read_items(path: str | Path, rows: list[dict]) -> list[dict]:
    """Check each held-out item; an error names the file, line and field."""
    for i, row in enumerate(rows):
        field = FieldReader(path, i + 1, row, label="line")
        field.get("source_index", (int, str))
        field.get("instruction", str, nonempty=True)
        chosen = field.get("chosen", str, optional=True, nonempty=True)
        rejected = field.get("rejected", str, optional=True, nonempty=True)
        if chosen is None and rejected is None:
            field.fail("chosen", "an item needs a chosen or a rejected answer")
        if rejected is not None:
            field.get("judgment", str, nonempty=True)
        blamed = field.get("blamed", list, optional=True)
        if blamed is not None and not all(isinstance(b, int) and b >= 0 for b in blamed):
            field.fail("blamed", "expected a list of token positions (non-negative integers)")
    return rows


def check_disjoint(items: list[dict], trained: list[dict], items_file, trained_file) -> None:
    """A held-out item must never be a training instance (matched on source_index)."""
    overlap = sorted({str(i["source_index"]) for i in items} & {str(t["source_index"]) for t in trained}, key=_num)
    if overlap:
        shown = ", ".join(overlap[:20]) + (f" and {len(overlap) - 20} more" if len(overlap) > 20 else "")
        raise DataError(items_file, None, "source_index",
                        f"{len(overlap)} held-out items were trained on ({trained_file}): source_index {shown}")


def _num(value: str):
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


# ------------------------------------------------------------------------------------------------- log-probs

@torch.no_grad()
def sequence_logprobs(model, sequences: list, pad: int, batch_size: int = 8) -> list[torch.Tensor]:
    """log p of each sequence's target tokens (the answer and EOS), in order, batched by length."""
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i].ids))
    out: list[torch.Tensor | None] = [None] * len(sequences)
    bar = progress(len(sequences), "scoring", unit="answer")
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = collate([Example(i, sequences[i], None) for i in chunk], pad).to(device)
        flat = target_logprobs(model, batch.input_ids, batch.attention_mask, batch.targets)
        counts = (batch.targets != -100).sum(1).tolist()
        for i, part in zip(chunk, flat.float().cpu().split(counts)):
            out[i] = part
        bar.update(len(chunk))
    bar.close()
    return out


def blame(model, tokenizer, items: list[dict], threshold: float, cutoff: int, batch_size: int = 8,
          control_seed: int | None = None) -> list[dict]:
    """Each item with a rejected answer gets, over the answer's target tokens (the answer and EOS):
    - `blamed`: the positions Eq. 5 flags under `model`, p(token | judgment prompt) / p(token | plain prompt) >
      threshold; `log_ratio` (that log ratio per token) and `base_logprob` (log p under the plain prompt), so
      the flags at any other lambda, and the tokens' base probabilities, can be read off later;
    - `in_span`: the positions inside the span the judgment criticises, by a heuristic (`judgment_span`);
    - with `control_seed`: the same under another item's judgment (a seeded derangement over the items with a
      rejected answer): `shuffled_from` (its source_index), `log_ratio_shuffled`, `blamed_shuffled`,
      `in_span_shuffled` (the span of the judgment shown).
    Run the model in fp32 (`load_model(..., fp32=True)`): bf16 moves tokens across lambda."""
    rows = [i for i, item in enumerate(items) if item.get("rejected")]
    donors = _derangement(rows, control_seed) if control_seed is not None else {}
    prompts = {"plain": [], "judged": [], "shuffled": []}
    for i in rows:
        item = items[i]
        prompts["plain"].append(encode(tokenizer, plain_prompt(item["instruction"], item.get("input")),
                                       item["rejected"], cutoff))
        prompts["judged"].append(encode(tokenizer, judgment_prompt(item["instruction"], item["judgment"],
                                                                   item.get("input")), item["rejected"], cutoff))
        if donors:
            prompts["shuffled"].append(encode(tokenizer, judgment_prompt(
                item["instruction"], items[donors[i]]["judgment"], item.get("input")), item["rejected"], cutoff))
    logprobs = {kind: sequence_logprobs(model, seqs, pad_id(tokenizer), batch_size) if seqs else []
                for kind, seqs in prompts.items()}
    out = [dict(item) for item in items]
    for k, i in enumerate(rows):
        plain, judged = logprobs["plain"][k], logprobs["judged"][k]
        _same_length(items[i], i, judged, plain)
        target = prompts["plain"][k]
        pieces = [tokenizer.decode([t]) for t in target.ids[target.n_masked:]]
        ratio = judged - plain
        out[i].update(blamed=torch.nonzero(flag_tokens(judged, plain, threshold)).flatten().tolist(),
                      log_ratio=_rounded(ratio), base_logprob=_rounded(plain),
                      in_span=judgment_span(pieces, items[i]["judgment"]))
        if donors:
            shuffled = logprobs["shuffled"][k]
            _same_length(items[i], i, shuffled, plain)
            donor = items[donors[i]]
            out[i].update(shuffled_from=donor["source_index"], log_ratio_shuffled=_rounded(shuffled - plain),
                          blamed_shuffled=torch.nonzero(flag_tokens(shuffled, plain, threshold)).flatten().tolist(),
                          in_span_shuffled=judgment_span(pieces, donor["judgment"]))
    return out


def judgment_span(pieces: list[str], judgment: str) -> list[int]:
    """Positions of the answer tokens inside the span a judgment criticises, by a stated heuristic: the token's
    text, stripped and lower-cased, is alphabetic, at least 4 characters long and occurs in the lower-cased
    judgment (judgments quote or paraphrase what they criticise; short and common pieces are left out)."""
    text = judgment.lower()
    return [k for k, piece in enumerate(pieces)
            if len(word := piece.strip().lower()) >= 4 and word.isalpha() and word in text]


def _derangement(rows: list[int], seed: int) -> dict[int, int]:
    """Each row's donor: the next row in a seeded shuffle, so no item keeps its own judgment."""
    if len(rows) < 2:
        raise ValueError("the shuffled-judgment control needs at least two items with a rejected answer")
    order = list(rows)
    random.Random(seed).shuffle(order)
    return {order[k]: order[(k + 1) % len(order)] for k in range(len(order))}


def _same_length(item: dict, i: int, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.numel() != b.numel():
        raise ValueError(f"item {i} (source_index {item['source_index']}): the rejected answer has {a.numel()} "
                         f"tokens after the judgment prompt and {b.numel()} after the plain one")


def _rounded(values: torch.Tensor) -> list[float]:
    return [round(float(v), 6) for v in values]


def score(model, tokenizer, items: list[dict], cutoff: int, batch_size: int = 8) -> list[dict]:
    """Per item: the per-token mean log-likelihood of each answer under the plain prompt, of the blamed and of
    the other tokens of the rejected answer, and each of the rejected answer's token log-probabilities
    (`rejected_tokens`, for contrasts at other lambdas and strata)."""
    keys, sequences = [], []
    for i, item in enumerate(items):
        prompt = plain_prompt(item["instruction"], item.get("input"))
        for side in ("chosen", "rejected"):
            if item.get(side):
                keys.append((i, side))
                sequences.append(encode(tokenizer, prompt, item[side], cutoff))
    logprobs = dict(zip(keys, sequence_logprobs(model, sequences, pad_id(tokenizer), batch_size)))
    scored = []
    for i, item in enumerate(items):
        row = {"source_index": item["source_index"], "chosen_logprob": None, "rejected_logprob": None,
               "blamed_logprob": None, "unflagged_logprob": None, "n_blamed": None}
        for side in ("chosen", "rejected"):
            if (i, side) in logprobs:
                row[f"{side}_logprob"] = float(logprobs[(i, side)].mean())
        if "blamed" in item and (i, "rejected") in logprobs:
            lp, positions = logprobs[(i, "rejected")], item["blamed"]
            if positions and max(positions) >= lp.numel():
                raise ValueError(f"item {i} (source_index {item['source_index']}): blamed position "
                                 f"{max(positions)} is past the answer's {lp.numel()} tokens (another tokenizer?)")
            row["n_blamed"] = len(positions)
            row["blamed_logprob"] = float(lp[positions].mean()) if positions else None
            others = sorted(set(range(lp.numel())) - set(positions))
            row["unflagged_logprob"] = float(lp[others].mean()) if others else None
        if (i, "rejected") in logprobs:
            row["rejected_tokens"] = _rounded(logprobs[(i, "rejected")])
        scored.append(row)
    return scored


# ------------------------------------------------------------------------------------------------- measures

def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def auc(positives: list[float], negatives: list[float]) -> float | None:
    """P(a positive's score > a negative's), ties counting half (the Mann-Whitney statistic)."""
    if not positives or not negatives:
        return None
    pooled = sorted([(v, 1) for v in positives] + [(v, 0) for v in negatives])
    rank_sum, i = 0.0, 0
    while i < len(pooled):  # average ranks over ties
        j = i
        while j < len(pooled) and pooled[j][0] == pooled[i][0]:
            j += 1
        rank = (i + j + 1) / 2
        rank_sum += rank * sum(label for _, label in pooled[i:j])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def summarize(rows: list[dict]) -> dict:
    pairs = [r for r in rows if r["chosen_logprob"] is not None and r["rejected_logprob"] is not None]
    chosen = [r["chosen_logprob"] for r in rows if r["chosen_logprob"] is not None]
    rejected = [r["rejected_logprob"] for r in rows if r["rejected_logprob"] is not None]
    blamed = [r["blamed_logprob"] for r in rows if r["blamed_logprob"] is not None]
    return {
        "items": len(rows),
        "preference_accuracy": _mean([float(r["chosen_logprob"] > r["rejected_logprob"]) for r in pairs]),
        "auc": None if pairs else auc(chosen, rejected),
        "blamed_logprob": _mean(blamed),
        "collateral": _mean(chosen),
        "rejected_logprob": _mean(rejected),
        "items_with_blamed_tokens": len(blamed),
    }


def compare(base: list[dict], run: list[dict], resamples: int, seed: int = 0) -> dict:
    """Each measure's change from base, with a 95% paired-bootstrap interval (items resampled, the same draw
    for both)."""
    if [str(r["source_index"]) for r in base] != [str(r["source_index"]) for r in run]:
        raise ValueError("base and run were scored on different held-out items")
    point_base, point_run = summarize(base), summarize(run)
    rng = random.Random(seed)
    draws = {m: [] for m in MEASURES}
    n = len(base)
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        b, r = summarize([base[i] for i in picks]), summarize([run[i] for i in picks])
        for m in MEASURES:
            if b[m] is not None and r[m] is not None:
                draws[m].append(r[m] - b[m])
    out = {}
    for m in MEASURES:
        if point_base[m] is None or point_run[m] is None:
            continue
        low, high = percentile_interval(draws[m])
        out[m] = {"base": point_base[m], "run": point_run[m], "change": point_run[m] - point_base[m],
                  "low": low, "high": high}
    return out


def load_model(model: str, adapter: str | None = None, device: str = "cpu", fp32: bool = False):
    """The model to score with, in fp32 (bf16 on a GPU unless `fp32`), its adapter applied unmerged, in eval
    mode."""
    from transformers import AutoTokenizer

    dtype = torch.bfloat16 if device.startswith("cuda") and not fp32 else torch.float32
    net = load_causal_lm(model, dtype=dtype).to(device)
    if adapter:
        net = with_adapter(net, adapter)
    return net.eval(), AutoTokenizer.from_pretrained(model)
