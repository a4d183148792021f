"""The online loop's data steps: drawing instructions never used before, replayed iterations, AI-judge data."""
from __future__ import annotations

import pytest

from repro.data import DataError, prepare
from repro.data.objectives import build_objective_instances
from repro.data.pool import draw_instructions, instruction_key


@pytest.fixture(scope="module")
def pool(store):
    rows, _ = prepare("cut-iter5", store)
    return rows


def test_draws_never_reuse_an_instruction(pool, store):
    released, _ = prepare("cut-iter1", store)
    drawn = []
    for k in (1, 2, 3):
        rows, stats = draw_instructions(pool, [released] + drawn, 300, seed=42, label=f"live-iter{k}")
        assert len(rows) == 300 and stats["candidates"] == len({instruction_key(r) for r in pool}) - 300 * (k - 1)
        drawn.append(rows)
    keys = [instruction_key(r) for rows in drawn for r in rows]
    assert len(set(keys)) == 900
    assert not set(keys) & {instruction_key(r) for r in released}
    # seeded: the same draw again; another label, another draw
    assert draw_instructions(pool, [released], 300, 42, "live-iter1")[0] == drawn[0]
    assert draw_instructions(pool, [released], 300, 42, "other-iter1")[0] != drawn[0]
    with pytest.raises(DataError, match="only 100 of 1000 are unused"):
        draw_instructions(pool, drawn, 101, 42, "live-iter4")


def test_duplicate_pool_entries_are_one_instruction():
    pool = [{"instruction": "A", "input": ""}, {"instruction": " A ", "input": None}, {"instruction": "B"}]
    rows, stats = draw_instructions(pool, [], 2, 0, "x")
    assert stats["candidates"] == 2 and {r["instruction"].strip() for r in rows} == {"A", "B"}


@pytest.mark.parametrize("k,positives,negatives,instances", [(1, 713, 287, 358), (2, 769, 231, 288),
                                                             (3, 758, 242, 302), (4, 755, 245, 306),
                                                             (5, 754, 246, 307)])
def test_replay_builds_the_released_training_sets(store, k, positives, negatives, instances):
    records, _ = prepare(f"cut-iter{k}", store)
    built, stats = build_objective_instances(records, "cut", downsample=0.25, seed=42)
    assert (stats["positives"], stats["negatives"], len(built)) == (positives, negatives, instances)


def test_ai_judge_data_is_the_first_3000_and_5000_judgments(store):
    for last, n, yes in ((3, 3000, 713 + 769 + 758), (5, 5000, 713 + 769 + 758 + 755 + 754)):
        records, _ = prepare(f"cut-iter1-{last}", store)
        assert len(records) == n and len({r["source_index"] for r in records}) == n
        instances, stats = build_objective_instances(records, "ai_judge", downsample=0.25)
        assert len(instances) == n  # an AI judge learns from every judgment: no downsampling
        assert sum(i["response"].endswith(" Yes.") for i in instances) == yes
        negative = next(i for i, r in zip(instances, records) if r["judgment"] is not None)
        assert negative["response"].endswith(" No.") and negative["prompt"].endswith("\n\n### Judgment: ")
