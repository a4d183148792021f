"""What the unlikelihood term does, token by token: the within-answer contrast of the held-out judgment test.

For a criticised answer scored under two models A and B (a run and the base model, or two runs), the flagged
tokens F are those Eq. 5 flags under the base model at the run's lambda, and the unflagged tokens U the others:

    contrast = (mean log p_A over F - mean log p_B over F) - (mean log p_A over U - mean log p_B over U)

Negative: A pushed the flagged tokens down relative to the rest of the same answer, which is what CUT's
unlikelihood term aims at and what the answer's own likelihood terms cannot do. Items with no flagged token, or
with every token flagged, have no contrast and are counted. A stratum keeps the flagged tokens whose base
probability lies in a range (the rare tokens unlikelihood hardly moves, p < 0.05, against the likely ones,
p > 0.2). Intervals: the mean over items with a 95% percentile interval from a bootstrap over items.
"""
from __future__ import annotations

import math

from repro.evaluate.bootstrap import bootstrap_mean

STRATA = {"p>0.2": (0.2, 1.0), "p<0.05": (0.0, 0.05)}


def flagged(item: dict, threshold: float | None = None) -> list[int]:
    """The positions of a blamed item's rejected answer that Eq. 5 flags under the base model: the stored flags
    at the split's lambda, or, given `threshold`, those of its stored log ratios above log(threshold)."""
    if threshold is None or "log_ratio" not in item:
        return list(item.get("blamed") or [])
    cut = math.log(threshold)
    return [k for k, r in enumerate(item["log_ratio"]) if r > cut]


def in_stratum(item: dict, positions: list[int], stratum: str | None) -> list[int]:
    if stratum is None:
        return positions
    low, high = STRATA[stratum]
    return [k for k in positions if low <= math.exp(item["base_logprob"][k]) <= high]


def item_contrast(a: list[float], b: list[float], inside: list[int], flagged_all: list[int]) -> float | None:
    """(mean of a - b over `inside`) - (mean of a - b over the answer's unflagged tokens), or None."""
    excluded = set(flagged_all)
    others = [k for k in range(len(a)) if k not in excluded]
    if not inside or not others:
        return None
    return item_shift(a, b, inside) - item_shift(a, b, others)


def item_shift(a: list[float], b: list[float], positions: list[int]) -> float | None:
    """The mean of a - b over the positions (the change of the flagged tokens' mean log p), or None."""
    return sum(a[k] - b[k] for k in positions) / len(positions) if positions else None


def contrasts(items: list[dict], a_rows: list[dict], b_rows: list[dict], threshold: float | None = None,
              stratum: str | None = None) -> dict[str, list[float | None]]:
    """Per item: the within-answer contrast of A against B, and the change of the flagged tokens alone."""
    out: dict[str, list[float | None]] = {"contrast": [], "flagged_shift": []}
    for item, a, b in zip(items, a_rows, b_rows):
        if str(a["source_index"]) != str(item["source_index"]) or str(b["source_index"]) != str(item["source_index"]):
            raise ValueError(f"scores and items disagree at source_index {item['source_index']}")
        if "rejected_tokens" not in a or "rejected_tokens" not in b or "blamed" not in item:
            out["contrast"].append(None)
            out["flagged_shift"].append(None)
            continue
        every = flagged(item, threshold)
        positions = in_stratum(item, every, stratum)
        out["contrast"].append(item_contrast(a["rejected_tokens"], b["rejected_tokens"], positions, every))
        out["flagged_shift"].append(item_shift(a["rejected_tokens"], b["rejected_tokens"], positions))
    return out


def interval(values: list[float | None], resamples: int, seed: int = 0) -> dict:
    """The mean of the defined values, its 95% percentile-bootstrap interval over items, and how many items
    had a value."""
    kept = [v for v in values if v is not None]
    n = len(kept)
    if not n:
        return {"mean": None, "low": None, "high": None, "n": 0, "missing": len(values)}
    low, high = bootstrap_mean(kept, resamples, seed)
    return {"mean": sum(kept) / n, "low": low, "high": high, "n": n, "missing": len(values) - n}


def control(items: list[dict]) -> dict:
    """The shuffled-judgment control over the blamed items: flagged tokens with the real judgment and with
    another item's, and the share of them inside the span the judgment shown criticises (and of all tokens)."""
    real = shuffled = tokens = real_in = shuffled_in = span_tokens = shuffled_span_tokens = 0
    for item in items:
        if "blamed_shuffled" not in item:
            continue
        n = len(item["log_ratio"])
        tokens += n
        real += len(item["blamed"])
        shuffled += len(item["blamed_shuffled"])
        real_in += len(set(item["blamed"]) & set(item["in_span"]))
        shuffled_in += len(set(item["blamed_shuffled"]) & set(item["in_span_shuffled"]))
        span_tokens += len(item["in_span"])
        shuffled_span_tokens += len(item["in_span_shuffled"])
    return {"tokens": tokens, "flagged_real": real, "flagged_shuffled": shuffled,
            "flagged_share_real": share(real, tokens), "flagged_share_shuffled": share(shuffled, tokens),
            "in_span_share_of_flagged_real": share(real_in, real),
            "in_span_share_of_flagged_shuffled": share(shuffled_in, shuffled),
            "in_span_share_of_tokens_real": share(span_tokens, tokens),
            "in_span_share_of_tokens_shuffled": share(shuffled_span_tokens, tokens)}


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
