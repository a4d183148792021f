"""The held-out judgment test (repro/evaluate/heldout.py): the split, the scores against transformers' own loss,
Eq. 5 flags against an independent computation, AUC against brute force, the bootstrap, and bad input."""
from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from repro.data import prepare
from repro.data.split import heldout_item, split_records, trained_items
from repro.data.templates import judgment_prompt, plain_prompt
from repro.evaluate import heldout as h


@pytest.fixture(scope="module")
def shepherd(store):
    return prepare("shepherd", store)[0]


@pytest.fixture(scope="module")
def iteration(store):
    return prepare("cut-iter1", store)[0]


def test_split_is_seeded_disjoint_and_keeps_file_order(shepherd):
    train, items = split_records(shepherd, "shepherd", 200, 96, seed=0)
    again = split_records(shepherd, "shepherd", 200, 96, seed=0)
    assert (train, items) == again
    other = split_records(shepherd, "shepherd", 200, 96, seed=1)[1]
    assert [i["source_index"] for i in other] != [i["source_index"] for i in items]
    assert len(train) == 96 and len(items) == 200
    held = [i["source_index"] for i in items]
    assert not set(held) & {r["source_index"] for r in train}
    positions = {r["source_index"]: n for n, r in enumerate(shepherd)}
    assert [positions[s] for s in held] == sorted(positions[s] for s in held)
    assert [positions[r["source_index"]] for r in train] == sorted(positions[r["source_index"]] for r in train)
    everything = split_records(shepherd, "shepherd", 200, None, seed=0)[0]
    assert len(everything) == len(shepherd) - 200


def test_items_pair_shepherd_answers_and_split_online_ones(shepherd, iteration):
    item = heldout_item(shepherd[0], "shepherd")
    assert (item["chosen"], item["rejected"], item["judgment"]) == (shepherd[0]["refinement"], shepherd[0]["output"],
                                                                    shepherd[0]["judgment"])
    positive = next(r for r in iteration if r["judgment"] is None)
    negative = next(r for r in iteration if r["judgment"] is not None)
    assert (heldout_item(positive, "cut-iter1")["chosen"], heldout_item(positive, "cut-iter1")["rejected"]) == \
        (positive["output"], None)
    assert (heldout_item(negative, "cut-iter1")["chosen"], heldout_item(negative, "cut-iter1")["rejected"]) == \
        (None, negative["output"])


def test_a_split_that_cannot_be_made_is_an_error(shepherd):
    with pytest.raises(ValueError, match="cannot give 1300 held-out items and 96"):
        split_records(shepherd, "shepherd", 1300, 96, seed=0)


def _items(records, dataset, n):
    return [heldout_item(r, dataset) for r in records if len(r["output"]) < 300][:n]


def test_scores_equal_transformers_own_loss_on_the_plain_prompt(tiny_model_dir, tiny_adapter_dir, shepherd):
    """chosen/rejected log-likelihood = minus the mean cross-entropy transformers computes over the answer and
    EOS after the plain prompt (prompt masked), with and without an adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    items = _items(shepherd, "shepherd", 5)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for adapter in (None, tiny_adapter_dir):
        model, _ = h.load_model(str(tiny_model_dir), str(adapter) if adapter else None)
        rows = h.score(model, tokenizer, items, cutoff=2048, batch_size=3)
        reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        if adapter:
            reference = PeftModel.from_pretrained(reference, adapter)
        reference.eval()
        for item, row in zip(items, rows):
            assert row["source_index"] == item["source_index"]
            for side in ("chosen", "rejected"):
                prompt = tokenizer(plain_prompt(item["instruction"]))["input_ids"]
                ids = tokenizer(plain_prompt(item["instruction"]) + item[side])["input_ids"] + [tokenizer.eos_token_id]
                labels = [-100] * len(prompt) + ids[len(prompt):]
                with torch.no_grad():
                    loss = reference(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
                assert row[f"{side}_logprob"] == pytest.approx(-float(loss), rel=1e-5, abs=1e-6)


def test_blamed_tokens_are_eq5_flags_under_the_model(tiny_model_dir, shepherd):
    model, tokenizer = h.load_model(str(tiny_model_dir))
    items = _items(shepherd, "shepherd", 4)
    threshold = 1.02
    blamed = h.blame(model, tokenizer, items, threshold, cutoff=2048, batch_size=2)

    def answer_logprobs(prompt, answer):
        n = len(tokenizer(prompt)["input_ids"])
        ids = tokenizer(prompt + answer)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
        return torch.stack([logp[t - 1, ids[t]] for t in range(n, len(ids))])

    total = 0
    for item, row in zip(items, blamed):
        judged = answer_logprobs(judgment_prompt(item["instruction"], item["judgment"]), item["rejected"])
        plain = answer_logprobs(plain_prompt(item["instruction"]), item["rejected"])
        expected = torch.nonzero(torch.exp(judged - plain) > threshold).flatten().tolist()
        assert row["blamed"] == expected
        total += len(expected)
    assert total > 0  # the check saw flags


def _row(i, chosen, rejected, blamed=None):
    return {"source_index": i, "chosen_logprob": chosen, "rejected_logprob": rejected, "blamed_logprob": blamed,
            "n_blamed": None}


def test_auc_equals_brute_force_pairs():
    rng = random.Random(3)
    for _ in range(20):
        pos = [rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(rng.randint(1, 9))]
        neg = [rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(rng.randint(1, 9))]
        pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p, n in itertools.product(pos, neg)]
        assert h.auc(pos, neg) == pytest.approx(sum(pairs) / len(pairs))


def test_summary_and_paired_bootstrap():
    rng = random.Random(0)
    base = [_row(i, rng.gauss(-2, 0.5), rng.gauss(-2.2, 0.5), rng.gauss(-4, 1)) for i in range(60)]
    assert h.summarize(base)["preference_accuracy"] == pytest.approx(
        sum(r["chosen_logprob"] > r["rejected_logprob"] for r in base) / 60)
    same = h.compare(base, base, resamples=200)
    assert all(c["change"] == 0 and c["low"] == 0 and c["high"] == 0 for c in same.values())
    lowered = [{**r, "blamed_logprob": r["blamed_logprob"] - 0.3 + rng.gauss(0, 0.05)} for r in base]
    cell = h.compare(base, lowered, resamples=500)["blamed_logprob"]
    assert cell["low"] <= cell["change"] <= cell["high"] < 0 and cell["change"] == pytest.approx(-0.3, abs=0.05)
    online = [_row(i, -1.0 - i / 100, None) for i in range(5)] + [_row(i, None, -1.5 + i / 100) for i in range(5, 10)]
    summary = h.summarize(online)
    assert summary["preference_accuracy"] is None and summary["auc"] == 1.0
    with pytest.raises(ValueError, match="different held-out items"):
        h.compare(base, base[1:], resamples=100)


def test_held_out_items_that_were_trained_on_are_refused(tmp_path, tiny_model_dir, shepherd, capsys):
    from repro.cli import main
    from repro.io import write_jsonl

    items = _items(shepherd, "shepherd", 3)
    write_jsonl(tmp_path / "items.jsonl", items)
    trained = [{"kind": "align_n", "source_index": items[1]["source_index"]}, {"kind": "align_n", "source_index": 9999}]
    write_jsonl(tmp_path / "instances.jsonl", trained)
    code = main(["evaluate", "heldout", "--model", str(tiny_model_dir), "--items", str(tmp_path / "items.jsonl"),
                 "--trained-on", str(tmp_path / "instances.jsonl"), "--out", str(tmp_path / "scores.json")])
    err = capsys.readouterr().err
    assert code == 2 and f"source_index {items[1]['source_index']}" in err and "items.jsonl" in err
    assert "1 held-out items were trained on" in err and not (tmp_path / "scores.json").exists()


@pytest.mark.parametrize("change,message", [
    ({"instruction": ""}, "line 2, field 'instruction': empty"),
    ({"chosen": None, "rejected": None}, "line 2, field 'chosen': an item needs a chosen or a rejected answer"),
    ({"judgment": None}, "line 2, field 'judgment': missing"),
    ({"blamed": [1, -2]}, "line 2, field 'blamed': expected a list of token positions"),
])
def test_bad_items_name_the_line_and_field(tmp_path, shepherd, change, message):
    from repro.data import DataError

    items = _items(shepherd, "shepherd", 2)
    items[1] = {k: v for k, v in {**items[1], **change}.items() if v is not None or k in ("chosen", "rejected")}
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    with pytest.raises(DataError, match=message):
        h.read_items(path, [json.loads(line) for line in path.read_text().splitlines()])


@pytest.mark.parametrize("heldout,message", [
    ({"alpaca-eval": {"blame_model": "tiny"}}, "heldout.alpaca-eval: 'alpaca-eval' is not a training data set"),
    ({"shepherd": {"blame_model": "gpt-5"}}, "heldout.shepherd.blame_model: 'gpt-5' is not a key of models"),
    ({"shepherd": {"blame_model": "tiny", "items": 0}}, "greater than or equal to 1"),
])
def test_config_heldout_is_validated(heldout, message):
    from pathlib import Path

    import yaml

    from repro.config import config_from_dict

    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "config/smoke.yaml").read_text())
    with pytest.raises(ValueError, match=message):
        config_from_dict({**data, "heldout": heldout})


# ------------------------------------------------------------------ the within-answer contrast (issue 23)


def test_the_contrast_worked_by_hand():
    from repro.evaluate.contrast import contrasts, flagged, interval

    item = {"source_index": 7, "blamed": [1, 3], "log_ratio": [0.0, 0.5, 0.1, 1.0], "base_logprob": [-1.0] * 4}
    a = {"source_index": 7, "rejected_tokens": [-1.0, -3.0, -2.0, -5.0]}
    b = {"source_index": 7, "rejected_tokens": [-1.5, -2.0, -2.5, -3.0]}
    # flagged 1, 3: changes -1, -2 -> -1.5; unflagged 0, 2: +0.5, +0.5 -> +0.5; contrast -2.0
    out = contrasts([item], [a], [b])
    assert out == {"contrast": [-2.0], "flagged_shift": [-1.5]}
    # at lambda e^0.3 only the log ratios 0.5 and 1.0 pass, the same flags; at e^0.05, position 2 joins
    assert flagged(item, 1.35) == [1, 3] and flagged(item, 1.06) == [1, 2, 3]
    assert contrasts([item], [a], [b], threshold=1.06)["contrast"] == [pytest.approx((-1 - 2 + 0.5) / 3 - 0.5)]
    # every token flagged, or none: no contrast, counted as missing
    assert contrasts([{**item, "blamed": []}], [a], [b])["contrast"] == [None]
    cell = interval([1.0, 1.0, None, 1.0], resamples=100)
    assert (cell["mean"], cell["low"], cell["high"], cell["n"], cell["missing"]) == (1.0, 1.0, 1.0, 3, 1)
    with pytest.raises(ValueError, match="disagree"):
        contrasts([item], [{**a, "source_index": 8}], [b])


def test_strata_keep_flagged_tokens_by_their_base_probability():
    import math

    from repro.evaluate.contrast import contrasts

    item = {"source_index": 1, "blamed": [0, 1, 2], "log_ratio": [1.0] * 4,
            "base_logprob": [math.log(0.5), math.log(0.01), math.log(0.1), math.log(0.9)]}
    a = {"source_index": 1, "rejected_tokens": [-1.0, -2.0, -3.0, 0.0]}
    b = {"source_index": 1, "rejected_tokens": [0.0, 0.0, 0.0, 0.0]}
    assert contrasts([item], [a], [b], stratum="p>0.2")["contrast"] == [-1.0]  # position 0 against position 3
    assert contrasts([item], [a], [b], stratum="p<0.05")["contrast"] == [-2.0]  # position 1


def test_log_ratios_give_the_flags_of_any_lambda_and_the_control_uses_another_items_judgment(tiny_model_dir,
                                                                                           shepherd):
    from repro.evaluate.contrast import control, flagged

    model, tokenizer = h.load_model(str(tiny_model_dir), fp32=True)
    items = _items(shepherd, "shepherd", 5)
    low, high = 1.01, 1.05
    with_control = h.blame(model, tokenizer, items, low, cutoff=2048, batch_size=2, control_seed=3)
    strict = h.blame(model, tokenizer, items, high, cutoff=2048, batch_size=2)
    assert sum(len(r["blamed"]) for r in with_control) > sum(len(r["blamed"]) for r in strict) > 0
    for row, other in zip(with_control, strict):
        assert flagged(row, high) == other["blamed"]  # flags at another lambda, read off the stored ratios
        assert flagged(row) == row["blamed"]
    donors = {r["source_index"]: r["shuffled_from"] for r in with_control}
    assert all(donor != index for index, donor in donors.items())  # a derangement: nobody keeps their own
    by_index = {i["source_index"]: i for i in items}
    swapped = [{**item, "judgment": by_index[donors[item["source_index"]]]["judgment"]} for item in items]
    for row, oracle in zip(with_control, h.blame(model, tokenizer, swapped, low, cutoff=2048, batch_size=2)):
        assert row["blamed_shuffled"] == oracle["blamed"] and row["in_span_shuffled"] == oracle["in_span"]
    summary = control(with_control)
    assert summary["flagged_real"] == sum(len(r["blamed"]) for r in with_control)
    assert summary["tokens"] == sum(len(r["log_ratio"]) for r in with_control)


def test_the_span_heuristic():
    pieces = [" The", " capital", " is", " Sydney", ".", " sydney", "ney"]
    assert h.judgment_span(pieces, "Wrong: the capital of Australia is Canberra, not Sydney.") == [1, 3, 5]


def test_a_committed_bundle_rebuilds_the_table_exactly(tmp_path, tiny_model_dir, tiny_adapter_dir, shepherd):
    """The per-item data a table is built from, gzipped into a bundle, rebuilds the same table byte for byte."""
    import yaml

    from repro.config import config_from_dict
    from repro.report.heldout import build, items_path, score_path, to_markdown, write_bundle

    records = [dict(r, source_index=i) for i, r in enumerate(shepherd[:30])]
    runs = tmp_path / "runs"
    train, held = split_records(records, "shepherd", 6, 10, seed=0)
    (runs / "heldout/shepherd").mkdir(parents=True)
    h_items = {"heldout": held, "insample": trained_items(train, "shepherd")}
    from repro.io import write_json, write_jsonl

    write_jsonl(runs / "heldout/shepherd/train.jsonl", train)
    model, tokenizer = h.load_model(str(tiny_model_dir), fp32=True)
    adapted, _ = h.load_model(str(tiny_model_dir), str(tiny_adapter_dir))
    for part, items in h_items.items():
        blamed = h.blame(model, tokenizer, items, 1.02, cutoff=2048, control_seed=0)
        write_jsonl(items_path(runs, "shepherd", part), blamed)
        for run, net in (("base-tiny", model), ("cut-a", adapted), ("cut-b", model)):
            score_path(runs, "shepherd", part, run).parent.mkdir(parents=True, exist_ok=True)
            write_json(score_path(runs, "shepherd", part, run), {"items": h.score(net, tokenizer, blamed, 2048)})
    raw = {"profile": "t", "models": {"tiny": {"source": "tiny"}},
           "heldout": {"shepherd": {"items": 6, "train_records": 10, "blame_model": "tiny", "threshold": 1.02,
                                    "bootstrap": 200, "compare": [{"run": "cut-a", "against": "cut-b",
                                                                   "question": "q"}]}},
           "experiments": {"cut-a": {"base_model": "tiny", "dataset": "shepherd"},
                           "cut-b": {"base_model": "tiny", "dataset": "shepherd",
                                     "training": {"cut": {"alpha": 0.0}}}}}
    config_file = tmp_path / "t.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    config = config_from_dict(raw)
    original = to_markdown(build(config, runs), "t")
    write_bundle(config, runs, tmp_path / "bundle", config_file)
    assert not list((tmp_path / "bundle").rglob("*.jsonl")) and list((tmp_path / "bundle").rglob("*.jsonl.gz"))
    assert to_markdown(build(config, tmp_path / "bundle"), "t") == original
    assert "cut-a − cut-b" in original and "in-sample" in original and "shuffled" in original


def test_one_bootstrap_for_every_interval():
    from repro.evaluate.bootstrap import bootstrap_mean, percentile_interval
    from repro.evaluate.contrast import interval
    from repro.judge.agreement import bootstrap_interval

    assert percentile_interval(list(range(99, -1, -1))) == (2, 96)  # ranks int(0.025 * 99), int(0.975 * 99)
    rng = random.Random(1)
    values = [rng.random() for _ in range(30)]
    expected = bootstrap_mean(values, 300, seed=4)
    assert tuple(bootstrap_interval(values, 300, 4)) == expected
    assert (interval(values, 300, 4)["low"], interval(values, 300, 4)["high"]) == expected


def test_the_committed_small_result_rebuilds_from_its_committed_data():
    """Golden: benchmarks/results/small-2026-12-03 holds the table the small profile produced and the per-item data
    it was built from (flags, per-token scores, the training split); rebuilding it gives the same table."""
    from pathlib import Path

    from repro.config import load_config
    from repro.report.heldout import build, to_markdown

    bundle = Path(__file__).resolve().parent.parent / "benchmarks/results/small-2026-12-03"
    config = load_config(bundle / "data/config.yaml")
    assert to_markdown(build(config, bundle / "data"), config.profile) == (bundle / "heldout.md").read_text()
