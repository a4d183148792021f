"""The one bootstrap every interval of the project uses: resample items with replacement, a seeded stream, and
the 2.5th and 97.5th percentiles of the resampled statistics read at ranks int(0.025 (B - 1)) and
int(0.975 (B - 1)) of the B sorted values."""
from __future__ import annotations

import random


def percentile_interval(draws: list[float]) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap draws (any order)."""
    values = sorted(draws)
    return values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]


def bootstrap_mean(values: list[float], resamples: int, seed: int = 0) -> tuple[float, float]:
    """The 95% interval of the mean of `values` (non-empty) over resampled items."""
    rng = random.Random(seed)
    n = len(values)
    return percentile_interval([sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples)])
