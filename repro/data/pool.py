"""Online alignment (paper §5.2): iteration k draws instructions never used before, from a pool, seeded.

The paper draws 1000 Stanford Alpaca instructions per iteration with no overlap between iterations. An
instruction is identified by its text and input, stripped; the pool is deduplicated in file order first, and
every instruction of the excluded files (earlier iterations, the released iteration data, ...) is never drawn.
"""
from __future__ import annotations

import random

from repro.errors import DataError


def instruction_key(row: dict) -> tuple[str, str]:
    return row["instruction"].strip(), (row.get("input") or "").strip()


def draw_instructions(pool: list[dict], excluded: list[list[dict]], n: int, seed: int, label: str,
                      source: str = "pool") -> tuple[list[dict], dict]:
    used = {instruction_key(r) for rows in excluded for r in rows}
    candidates, seen = [], set()
    for i, row in enumerate(pool):
        if not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
            raise DataError(source, i, "instruction", "missing or empty")
        key = instruction_key(row)
        if key not in used and key not in seen:
            seen.add(key)
            candidates.append(i)
    if len(candidates) < n:
        raise DataError(source, None, None, f"{label}: {n} new instructions needed but only {len(candidates)} of "
                        f"{len(pool)} are unused; use a larger pool or fewer instructions per iteration")
    chosen = sorted(random.Random(f"{seed}/{label}").sample(candidates, n))
    rows = [{"id": f"{label}-{j}", "instruction": pool[i]["instruction"], "input": pool[i].get("input") or "",
             "pool_index": i} for j, i in enumerate(chosen)]
    stats = {"label": label, "seed": seed, "drawn": n, "pool": len(pool), "excluded_instructions": len(used),
             "candidates": len(candidates)}
    return rows, stats
