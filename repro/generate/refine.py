"""ILF's first step (Eq. 2): the model rewrites each negative response using its judgment (templates.REFINE).

Positives pass through unchanged. The human refinement a data set ships (`refinement`) is kept in
`meta.human_refinement`, and `refinement` becomes the model's, so `ilf_mle` / `ilf_dpo` instances use it.
Greedy decoding; an empty refinement is kept as written by the model and counted (ILF then rejects it by name).
"""
from __future__ import annotations

from pathlib import Path

from repro.data.templates import refine_prompt
from repro.generate.backends import generate_texts, make_backend
from repro.generate.spec import GenerationSpec
from repro.io import read_jsonl, write_json, write_jsonl


def refine_records(spec: GenerationSpec, records_path: str | Path, out: str | Path) -> dict:
    records = read_jsonl(records_path)
    negatives = [i for i, r in enumerate(records) if r.get("judgment") is not None]
    prompts = [refine_prompt(records[i]["instruction"], records[i].get("input"), records[i]["output"],
                             records[i]["judgment"]) for i in negatives]
    texts = generate_texts(make_backend(spec), prompts, spec.decoding) if prompts else []
    refined = [dict(r) for r in records]
    for i, text in zip(negatives, texts):
        meta = dict(refined[i].get("meta") or {})
        meta["human_refinement"] = refined[i].get("refinement")
        refined[i].update(refinement=text.strip(), meta=meta)
    write_jsonl(out, refined)
    summary = {"records": len(records), "refined": len(negatives),
               "empty_refinements": sum(not t.strip() for t in texts),
               "model": spec.model, "adapter": spec.adapter, "decoding": spec.decoding.__dict__}
    write_json(Path(out).with_name(Path(out).name.removesuffix(".jsonl") + ".meta.json"), summary)
    return summary
