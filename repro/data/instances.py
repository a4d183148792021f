"""Turn normalised records into CUT training instances (paper §4.1, Figure 5; docs/method.md).

A positive record becomes one Align-P instance (plain prompt + response). A negative record becomes one Align-N
instance (judgment prompt + response) that carries its Misalign prompt (plain prompt, the same response).
Align-P downsampling follows the released rule: keep ``n_keep = int(n_neg * ratio)`` positives, chosen by
``random.seed(seed); random.sample(positions of the positives in file order, n_keep)``, only if
``n_keep < n_pos``; the order of the data is kept.
"""
from __future__ import annotations

import random

from repro.data.records import FieldReader
from repro.data.templates import judgment_prompt, plain_prompt
from repro.errors import DataError


def downsample_positions(records: list[dict], ratio: float | None, seed: int = 42) -> set[int] | None:
    """Positions of the positives to keep, or None when every record is kept."""
    if ratio is None or ratio < 0:  # released default -1: no downsampling
        return None
    positives = [i for i, r in enumerate(records) if r["judgment"] is None]
    n_keep = int((len(records) - len(positives)) * ratio)
    if n_keep >= len(positives):
        return None
    return set(random.Random(seed).sample(positives, n_keep))


def check_records(records: list[dict], source: str = "records") -> None:
    """Every objective needs an instruction, a non-empty response and the record's source index; the input, the
    judgment (null for a positive) and the refinement, where present, are text."""
    for i, record in enumerate(records):
        f = FieldReader(source, i, record)
        f.get("instruction", str, nonempty=True)
        f.get("source_index", (int, str))
        f.get("input", str, optional=True)
        f.get("judgment", str, optional=True, nonempty=True)
        f.get("refinement", str, optional=True)
        if not isinstance(record["output"], str) or not record["output"].strip():
            raise DataError(source, i, "output", "empty response")


def cut_instance(record: dict, i: int, source: str) -> dict:
    """A positive: Align-P (plain prompt). A negative: Align-N (judgment prompt) with its Misalign prompt."""
    judgment = record.get("judgment")
    if judgment is None:
        return {"kind": "align_p", "source_index": record["source_index"],
                "prompt": plain_prompt(record["instruction"], record.get("input")), "response": record["output"]}
    return {"kind": "align_n", "source_index": record["source_index"],
            "prompt": judgment_prompt(record["instruction"], judgment, record.get("input")),
            "misalign_prompt": plain_prompt(record["instruction"], record.get("input")),
            "response": record["output"], "judgment": judgment, "refinement": record.get("refinement")}


def build_instances(records: list[dict], downsample: float | None = None, seed: int = 42,
                    source: str = "records", make=cut_instance) -> tuple[list[dict], dict]:
    """One instance per record (`make(record, index, source)`: CUT's by default), positives downsampled."""
    check_records(records, source)
    keep = downsample_positions(records, downsample, seed)
    instances, dropped = [], 0
    for i, record in enumerate(records):
        if record.get("judgment") is None and keep is not None and i not in keep:
            dropped += 1
            continue
        instances.append(make(record, i, source))
    n_pos = sum(1 for r in records if r.get("judgment") is None)
    stats = {"records": len(records), "positives": n_pos, "negatives": len(records) - n_pos,
             "downsample": downsample, "seed": seed, "positives_dropped_by_downsampling": dropped,
             "instances": len(instances)}
    return instances, stats
