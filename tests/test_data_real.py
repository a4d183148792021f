"""Converters and instance building on the real data of the local mirror: counts and content the paper states."""
from __future__ import annotations

import json
import random

import pytest

from repro.data import build_instances, prepare, templates


def test_shepherd_is_1317_negatives_joined_with_refinements(store, mirror):
    rows, stats = prepare("shepherd", store)
    assert len(rows) == 1317 and stats == {"read": 1317, "kept": 1317, "skipped": {}}
    assert all(r["judgment"] for r in rows)
    assert [r["source_index"] for r in rows] == list(range(1317))
    raw = [json.loads(line) for line in open(mirror / "shepherd/human_data_raw.jsonl")]
    feed = [json.loads(line) for line in open(mirror / "shepherd/human_data_for_model.jsonl")]
    for i in (0, 500, 1316):
        assert rows[i]["instruction"] == feed[i]["question"]
        assert rows[i]["output"] == feed[i]["answer"]
        assert rows[i]["judgment"] == feed[i]["feedback"]
        assert rows[i]["refinement"] == raw[i]["metadata"]["output_correct"]
    composition = {}
    for r in rows:
        composition[r["meta"]["dataset"]] = composition.get(r["meta"]["dataset"], 0) + 1
    assert composition["GSM8K"] == 431 and composition["PIQA"] == 246  # the composition counted from the Shepherd files


@pytest.mark.parametrize("k,pos,neg,with_input,kept,total", [
    (1, 713, 287, 406, 71, 358), (2, 769, 231, 382, 57, 288), (3, 758, 242, 405, 60, 302),
    (4, 755, 245, 409, 61, 306), (5, 754, 246, 422, 61, 307),
])
def test_iteration_files_counts_and_downsampling(store, k, pos, neg, with_input, kept, total):
    rows, _ = prepare(f"cut-iter{k}", store)
    assert sum(r["judgment"] is None for r in rows) == pos
    assert sum(r["judgment"] is not None for r in rows) == neg
    assert sum(bool(r["input"]) for r in rows) == with_input
    instances, stats = build_instances(rows, downsample=0.25)
    assert len(instances) == total
    assert sum(i["kind"] == "align_p" for i in instances) == kept
    assert sum(i["kind"] == "align_n" for i in instances) == neg


def _released_downsampling(rows: list[dict]) -> list[int]:
    """The released loop of finetune_unlikelihood.py, written out independently: module-level random.seed(42),
    then random.sample over the positives' positions and pop() of the others from the back."""
    random.seed(42)
    processed, pos_ids = list(range(len(rows))), []
    for ix, row in enumerate(rows):
        if row["judgment"] is None:
            pos_ids.append(ix)
    n_neg = len(rows) - len(pos_ids)
    n_keep = int(n_neg * 0.25)
    if n_keep < len(pos_ids):
        keep = random.sample(pos_ids, n_keep)
        for idx in sorted(pos_ids, reverse=True):
            if idx not in keep:
                processed.pop(idx)
    return processed


def test_iteration1_keeps_exactly_the_positives_the_released_rule_picks(store):
    rows, _ = prepare("cut-iter1", store)
    expected = _released_downsampling(rows)
    instances, _ = build_instances(rows, downsample=0.25)
    assert [i["source_index"] for i in instances] == expected  # same examples, same order
    kept_positives = [i["source_index"] for i in instances if i["kind"] == "align_p"]
    assert len(kept_positives) == 71
    # a different seed picks a different set, so the test above really pins the seed
    other, _ = build_instances(rows, downsample=0.25, seed=43)
    assert [i["source_index"] for i in other if i["kind"] == "align_p"] != kept_positives


def test_instances_use_the_exact_templates_and_fold_the_input(store):
    rows, _ = prepare("cut-iter1", store)
    instances, _ = build_instances(rows)
    by_index = {i["source_index"]: i for i in instances}
    negative_with_input = next(r for r in rows if r["judgment"] and r["input"])
    inst = by_index[negative_with_input["source_index"]]
    folded = f"{negative_with_input['instruction']}\n{negative_with_input['input']}"
    assert inst["kind"] == "align_n"
    assert inst["prompt"] == (
        "Below is an instruction that describes a task. Write a response to the instruction and the response "
        f"should match the corresponding judgment.\n\n### Instruction:\n{folded}\n\n### Judgment:\n"
        f"{negative_with_input['judgment']}\n\n### Response:\n")
    assert inst["misalign_prompt"] == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        f"request.\n\n### Instruction:\n{folded}\n\n### Response:\n")
    assert inst["response"] == negative_with_input["output"]
    positive = next(r for r in rows if r["judgment"] is None and not r["input"])
    p = by_index[positive["source_index"]]
    assert p["kind"] == "align_p" and "misalign_prompt" not in p
    assert p["prompt"] == templates.plain_prompt(positive["instruction"])


def test_templates_match_the_released_file(mirror):
    released = json.loads((mirror / "cut/templates/alpaca.json").read_text())
    assert templates.PLAIN == released["prompt_no_input"]
    assert templates.JUDGMENT == released["prompt_no_input_judge"]
    assert templates.RESPONSE_SPLIT == released["response_split"]


@pytest.mark.parametrize("name,count", [
    ("arc-challenge-train", 1119), ("arc-challenge-validation", 299), ("arc-challenge-test", 1172),
    ("hellaswag-validation", 10042), ("mmlu-dev", 285), ("mmlu-test", 14042), ("truthfulqa-mc", 817),
    ("alpaca-eval", 805), ("alpaca-eval-2", 805),
])
def test_evaluation_sets_have_the_paper_sizes(store, name, count):
    rows, stats = prepare(name, store)
    assert len(rows) == count and stats["skipped"] == {}


def test_evaluation_sets_are_in_the_schemas_lm_eval_and_alpaca_eval_expect(store):
    arc, _ = prepare("arc-challenge-test", store)
    assert set(arc[0]) == {"id", "question", "choices", "answerKey"}
    assert arc[0]["answerKey"] in arc[0]["choices"]["label"]
    hs, _ = prepare("hellaswag-validation", store)
    assert hs[0]["label"] in {"0", "1", "2", "3"} and len(hs[0]["endings"]) == 4
    mmlu, _ = prepare("mmlu-test", store)
    assert len({r["subject"] for r in mmlu}) == 57
    assert all(len(r["choices"]) == 4 and r["answer"] in (0, 1, 2, 3) for r in mmlu)
    dev, _ = prepare("mmlu-dev", store)
    assert all(n == 5 for n in _count_by(dev, "subject").values())
    tqa, _ = prepare("truthfulqa-mc", store)
    assert sum(tqa[0]["mc1_targets"]["labels"]) == 1 and len(tqa[0]["mc2_targets"]["choices"]) >= 2
    ae, _ = prepare("alpaca-eval", store)
    assert {r["generator"] for r in ae} == {"text_davinci_003"}
    ae2, _ = prepare("alpaca-eval-2", store)
    assert [r["instruction"] for r in ae2] == [r["instruction"] for r in ae]


def _count_by(rows, key):
    out = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return out
