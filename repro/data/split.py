"""The held-out split of a training set (config `heldout`): a seeded choice of records kept out of every run's
training, as items of the held-out judgment test (repro/evaluate/heldout.py scores them), and the training part
as items too, to score the runs in-sample."""
from __future__ import annotations

import random


def heldout_item(record: dict, dataset: str) -> dict:
    """Shepherd-style records (a judgment and a human refinement): a pair. Otherwise one answer: chosen when the
    record is positive, rejected (with its judgment) when it is negative."""
    judgment, refinement = record.get("judgment"), record.get("refinement")
    if judgment is not None and refinement:
        chosen, rejected = refinement, record["output"]
    elif judgment is None:
        chosen, rejected = record["output"], None
    else:
        chosen, rejected = None, record["output"]
    return {"dataset": dataset, "source_index": record["source_index"], "instruction": record["instruction"],
            "input": record.get("input") or "", "chosen": chosen, "rejected": rejected, "judgment": judgment}


def split_records(records: list[dict], dataset: str, items: int, train_records: int | None,
                  seed: int) -> tuple[list[dict], list[dict]]:
    """(training records, held-out items): a seeded permutation; the first `items` records are held out, the
    next `train_records` train (all the rest when None). Both keep the data set's order."""
    wanted = items + (train_records or 0)
    if wanted > len(records) or items >= len(records):
        raise ValueError(f"{dataset}: {len(records)} records cannot give {items} held-out items and "
                         f"{train_records or 'at least one'} training records")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = sorted(order[:items])
    rest = order[items:] if train_records is None else order[items:items + train_records]
    return [records[i] for i in sorted(rest)], [heldout_item(records[i], dataset) for i in held]


def trained_items(records: list[dict], dataset: str) -> list[dict]:
    """The training part of a split as items, to score the runs on what they trained on (in-sample)."""
    return [heldout_item(record, dataset) for record in records]
