"""Training instances per objective (paper §3.2, §4.1, §5.3; docs/method.md): how each method sees a judged record.

Every objective reads the same normalised records and writes instances of three kinds:
``align_p`` / ``align_n`` (CUT, repro.data.instances), ``mle`` (likelihood on ``response`` after ``prompt``;
optionally a second target ``continuation`` after ``continuation_prompt``), and ``pair`` (``prompt``, ``chosen``,
``rejected``, for DPO). Choices the paper leaves open are written here and in config/paper.yaml:

- hindsight (Eq. 4): y after the judgment prompt (Figure 5, Align-N) for negatives; positives (no judgment) after
  the plain prompt, which is what CUT's Align-P does, so "CUT - L1" equals Hindsight as Table 4 observes.
- forward_prediction (Eq. 1): plain prompt, y, then FORWARD_JOINT and the judgment; a positive's judgment is
  "Perfect." (what the Figure 8 judge writes for it). Loss: mean over y + mean over j.
- ilf_mle (Eqs. 2-3): the refinement after the plain prompt for negatives (the model's, from `repro refine`, or the
  human one shipped with the data); positives keep their response.
- ai_judge (Figure 9): the Figure 9 prompt, then "judgment decision" as the target, for every record.
- ilf_dpo: refinement preferred over the response, per negative. dpo: UltraFeedback, all pairs of an
  instruction's completions with different overall scores, the higher preferred.
- kto (not in the paper): unpaired examples (``prompt``, ``completion``, ``label``) after the plain prompt; a
  positive record's response is desirable, a negative's undesirable; with ``kto.refinements_as_desirable`` each
  negative's refinement is one more desirable example. The examples are shuffled with the seed: TRL reads them in
  order and estimates KTO's KL term from the other examples of a micro-batch, so a record's response and its
  refinement must not sit side by side, nor all desirable examples at the end.
Align-P downsampling (`downsample`) applies to every objective that keeps positives, as it does for CUT.
"""
from __future__ import annotations

import random
from itertools import combinations

from repro.data.instances import build_instances, check_records, cut_instance
from repro.data.templates import POSITIVE_JUDGMENT, ai_judge_prompt, ai_judge_target, judgment_prompt, plain_prompt
from repro.errors import DataError

# the training objectives (config `training.objective`)
OBJECTIVES = ("cut", "hindsight", "forward_prediction", "ilf_mle", "ai_judge", "ilf_dpo", "dpo", "kto")
FORWARD_JOINT = "\n\n### Judgment:\n"
PAIR_OBJECTIVES = ("ilf_dpo", "dpo")
TRL_OBJECTIVES = (*PAIR_OBJECTIVES, "kto")  # trained (and tokenised) by TRL's trainers, not repro.cut.train
INSTANCE_KINDS = {"cut": {"align_p", "align_n"}, **{o: {"pair"} for o in PAIR_OBJECTIVES}, "kto": {"unpaired"},
                  **{o: {"mle"} for o in OBJECTIVES if o not in ("cut", "kto", *PAIR_OBJECTIVES)}}


def _mle(record: dict, prompt: str, response: str, **extra) -> dict:
    return {"kind": "mle", "source_index": record["source_index"], "prompt": prompt, "response": response, **extra}


def _hindsight(record: dict, i: int, source: str) -> dict:
    j = record["judgment"]
    prompt = plain_prompt(record["instruction"], record.get("input")) if j is None else judgment_prompt(
        record["instruction"], j, record.get("input"))
    return _mle(record, prompt, record["output"])


def _forward_prediction(record: dict, i: int, source: str) -> dict:
    return _mle(record, plain_prompt(record["instruction"], record.get("input")), record["output"],
                continuation_prompt=FORWARD_JOINT, continuation=record["judgment"] or POSITIVE_JUDGMENT)


def _refinement(record: dict, i: int, source: str) -> str:
    refinement = record.get("refinement")
    if not isinstance(refinement, str) or not refinement.strip():
        raise DataError(source, i, "refinement", "missing or empty: ILF needs a refinement of every negative "
                        "(run `repro refine`, or use a data set that ships human refinements)")
    return refinement


def _ilf_mle(record: dict, i: int, source: str) -> dict:
    response = record["output"] if record["judgment"] is None else _refinement(record, i, source)
    return _mle(record, plain_prompt(record["instruction"], record.get("input")), response)


def _ai_judge(record: dict, i: int, source: str) -> dict:
    return _mle(record, ai_judge_prompt(record["instruction"], record.get("input"), record["output"]),
                ai_judge_target(record["judgment"]))


def _kto_example(record: dict, i: int, source: str) -> dict:
    return {"kind": "unpaired", "source_index": record["source_index"],
            "prompt": plain_prompt(record["instruction"], record.get("input")), "completion": record["output"],
            "label": record["judgment"] is None, "from": "response"}


def _kto_instances(records: list[dict], downsample: float | None, seed: int, source: str,
                   refinements: bool) -> tuple[list[dict], dict]:
    instances, stats = build_instances(records, downsample, seed, source, _kto_example)
    if refinements:
        instances += [{**_kto_example(r, i, source), "completion": _refinement(r, i, source), "label": True,
                       "from": "refinement"} for i, r in enumerate(records) if r["judgment"] is not None]
    random.Random(seed).shuffle(instances)
    desirable = sum(1 for x in instances if x["label"])
    return instances, {**stats, "instances": len(instances), "desirable": desirable,
                       "undesirable": len(instances) - desirable, "refinements_as_desirable": refinements}


def _ilf_pairs(records: list[dict], source: str) -> list[dict]:
    return [{"kind": "pair", "source_index": r["source_index"],
             "prompt": plain_prompt(r["instruction"], r.get("input")),
             "chosen": _refinement(r, i, source), "rejected": r["output"]}
            for i, r in enumerate(records) if r["judgment"] is not None]


def _reward_pairs(records: list[dict], source: str) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for i, r in enumerate(records):
        meta = r.get("meta") or {}
        if r.get("score") is None or "line" not in meta:
            raise DataError(source, i, "score", "DPO pairs need UltraFeedback records (score and meta.line)")
        groups.setdefault((meta.get("file"), meta["line"]), []).append(r)
    pairs = []
    for group in groups.values():
        for a, b in combinations(group, 2):
            if a["score"] == b["score"]:
                continue
            chosen, rejected = (a, b) if a["score"] > b["score"] else (b, a)
            pairs.append({"kind": "pair", "source_index": chosen["source_index"],
                          "prompt": plain_prompt(a["instruction"], a.get("input")), "chosen": chosen["output"],
                          "rejected": rejected["output"], "scores": [chosen["score"], rejected["score"]]})
    return pairs


INSTANCE_BUILDERS = {"cut": cut_instance, "hindsight": _hindsight, "forward_prediction": _forward_prediction,
                     "ilf_mle": _ilf_mle, "ai_judge": _ai_judge}


def first_instructions(records: list[dict], n: int) -> list[dict]:
    """The records of the first n distinct instructions, in file order (Figure 4b: 1000 / 2000 / 3000)."""
    kept: set = set()
    out = []
    for r in records:
        key = (r["instruction"], r.get("input") or "")
        if key not in kept and len(kept) == n:
            continue
        kept.add(key)
        out.append(r)
    if len(kept) < n:
        raise ValueError(f"{n} instructions asked for but the records hold only {len(kept)}")
    return out


def build_objective_instances(records: list[dict], objective: str = "cut", downsample: float | None = None,
                              seed: int = 42, source: str = "records", skip_empty: bool = False,
                              instructions: int | None = None, kto_refinements: bool = False):
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective '{objective}'; known: {', '.join(OBJECTIVES)}")
    if instructions is not None:
        records = first_instructions(records, instructions)
    empty = [i for i, r in enumerate(records) if not (isinstance(r.get("output"), str) and r["output"].strip())]
    if empty and skip_empty:  # online loops: a model may answer nothing; counted, never silently
        drop = set(empty)
        records = [r for i, r in enumerate(records) if i not in drop]
    extra = {"objective": objective, "empty_responses_skipped": len(empty) if skip_empty else 0,
             "instructions": instructions}
    if objective in PAIR_OBJECTIVES:
        check_records(records, source)
        instances = _ilf_pairs(records, source) if objective == "ilf_dpo" else _reward_pairs(records, source)
        stats = {"records": len(records), "pairs": len(instances), "instances": len(instances)}
    elif objective == "kto":
        instances, stats = _kto_instances(records, downsample, seed, source, kto_refinements)
    else:  # an AI judge learns from every judgment: no downsampling
        ratio = None if objective == "ai_judge" else downsample
        instances, stats = build_instances(records, ratio, seed, source, INSTANCE_BUILDERS[objective])
    if not instances:
        raise ValueError(f"{source}: no training instances for objective '{objective}'")
    return instances, {**stats, **extra}
