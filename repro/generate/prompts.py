"""Prompt sets: `alpaca_eval` (805 instructions), `summarization-test`, or a JSONL file of instructions."""
from __future__ import annotations

from pathlib import Path

from repro.data import DataStore, prepare
from repro.data.records import FieldReader
from repro.errors import DataError
from repro.io import read_jsonl

NAMED = {"alpaca_eval": "alpaca-eval", "summarization-test": "summarization-test"}


def load_prompts(prompt_set: str, store=None, limit: int | None = None) -> list[dict]:
    """Each prompt: {id, instruction, input, dataset}. `limit` keeps the first N."""
    if prompt_set in NAMED:
        rows, _ = prepare(NAMED[prompt_set], store or DataStore.from_env())
        prompts = [{"id": i, "instruction": r["instruction"], "input": r.get("input") or "",
                    "dataset": r.get("dataset", prompt_set)} for i, r in enumerate(rows)]
    elif Path(prompt_set).is_file():
        prompts = []
        for i, row in enumerate(read_jsonl(prompt_set)):
            f = FieldReader(prompt_set, i, row, "line")
            prompts.append({"id": row.get("id", i), "instruction": f.get("instruction", str, nonempty=True),
                            "input": f.get("input", str, optional=True) or "",
                            "dataset": row.get("dataset", Path(prompt_set).stem)})
        ids = [p["id"] for p in prompts]
        if len(set(map(str, ids))) != len(ids):
            raise DataError(prompt_set, None, "id", "prompt ids are not unique")
    else:
        raise DataError(None, None, None, f"unknown prompt set '{prompt_set}': use alpaca_eval, "
                        "summarization-test, or a JSONL file of instructions")
    return prompts[:limit] if limit is not None else prompts
