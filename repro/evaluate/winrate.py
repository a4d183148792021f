"""AlpacaEval win rate from annotation rows, computed independently of alpaca_eval (tests check both agree).

`preference`: 1 = the reference (output_1) wins, 2 = the model (output_2) wins, 0 or 1.5 = a tie (counts half);
values in between (weighted judges) count as p - 1; missing (null/NaN) annotations are excluded and counted.
"""
from __future__ import annotations

import math


def winrate(annotations: list[dict]) -> dict:
    scores, wins, losses, ties, missing = [], 0, 0, 0, 0
    for row in annotations:
        p = row.get("preference")
        if p is None or (isinstance(p, float) and math.isnan(p)):
            missing += 1
            continue
        p = 1.5 if p == 0 else float(p)
        if not 1 <= p <= 2:
            raise ValueError(f"preference {p!r} is outside [1, 2] (instruction {row.get('instruction', '')[:60]!r})")
        scores.append(p - 1)
        wins += p > 1.5
        losses += p < 1.5
        ties += p == 1.5
    n = len(scores)
    if not n:
        raise ValueError(f"no annotation has a preference ({missing} missing): no win rate")
    mean = sum(scores) / n
    # one annotation has no spread to estimate: its standard error is unknown (null), never NaN
    sem = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1)) / math.sqrt(n) if n > 1 else None
    return {"win_rate": 100 * mean, "standard_error": None if sem is None else 100 * sem, "n": n, "wins": wins,
            "losses": losses, "ties": ties, "missing": missing}
