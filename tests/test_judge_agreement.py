"""`repro judge agreement`: a judge against reference pairwise annotations, on the stored GPT-4 annotations."""
from __future__ import annotations

import json

import pytest

from repro.cli import main
from repro.judge.agreement import agreement


@pytest.fixture(scope="module")
def stored(mirror):
    return mirror / "alpaca_eval/results/cut-13b/alpaca_eval_gpt4/annotations.json"


def _rows(path):
    return json.loads(path.read_text())


def _write(path, rows):
    path.write_text(json.dumps(rows))
    return path


def test_two_copies_agree_fully(stored, tmp_path):
    copy = _write(tmp_path / "copy.json", _rows(stored))
    result = agreement(copy, [stored], bootstrap=200)
    assert (result["agreement"], result["kappa"], result["agreement_ci95"]) == (1.0, 1.0, [1.0, 1.0])
    missing = sum(r["preference"] is None for r in _rows(stored))
    assert result["n"] == len(_rows(stored)) - missing and result["judge_missing_preference"] == missing == 1


def test_flipped_preferences_give_exactly_the_expected_agreement(stored, tmp_path):
    """Flip the winner of 100 decided items and make 50 others ties: agreement = (n - 100 - 25) / n."""
    rows = _rows(stored)
    decided = [i for i, r in enumerate(rows) if r["preference"] in (1.0, 2.0)]
    flipped, tied = set(decided[:100]), set(decided[100:150])
    for i in flipped:
        rows[i]["preference"] = 3.0 - rows[i]["preference"]
    for i in tied:
        rows[i]["preference"] = 1.5
    result = agreement(_write(tmp_path / "judge.json", rows), [stored], bootstrap=0)
    n = result["n"]
    assert result["agreement"] == pytest.approx((n - 100 - 0.5 * 50) / n, abs=1e-12)
    assert result["exact_agreement"] == pytest.approx((n - 150) / n, abs=1e-12)
    assert 0 < result["kappa"] < 1


def test_kappa_and_the_bootstrap_on_a_worked_example(tmp_path):
    """10 items: judge/reference outcomes (1,1) x4, (2,2) x3, (1,2) x2, (1.5,2) x1. p_o = 0.7;
    judge marginals 1: .6, 1.5: .1, 2: .3; reference 1: .4, 2: .6; p_e = .24 + .18 = .42; kappa = .28/.58."""
    outcomes = [(1, 1)] * 4 + [(2, 2)] * 3 + [(1, 2)] * 2 + [(1.5, 2)]
    judge = [{"instruction": f"q{i}", "output_1": "a", "output_2": "bb", "preference": j}
             for i, (j, _) in enumerate(outcomes)]
    reference = [{**row, "preference": r} for row, (_, r) in zip(judge, outcomes)]
    result = agreement(_write(tmp_path / "j.json", judge), [_write(tmp_path / "r.json", reference)], 400, seed=1)
    assert result["kappa"] == pytest.approx(0.28 / 0.58, abs=1e-12)
    assert result["agreement"] == pytest.approx(0.75)  # 7 matches + one half
    low, high = result["agreement_ci95"]
    assert low < 0.75 < high and 0.4 < low and high <= 1.0
    # output_2 is the longer one: the reference always crowns it when decided, the judge 3 times in 9
    assert result["length_bias"] == {"judge": pytest.approx(3 / 9), "reference": pytest.approx(6 / 10)}


def test_a_judge_that_saw_both_orders(stored, tmp_path):
    """Every item also shown swapped: both judgments match the reference (mirrored); the position bias counts
    how often the first-listed output wins, here a judge that always picks the first one."""
    rows = [r for r in _rows(stored) if r["preference"] in (1.0, 2.0)][:40]
    swapped = [{**r, "output_1": r["output_2"], "output_2": r["output_1"], "preference": 3.0 - r["preference"]}
               for r in rows]
    result = agreement(_write(tmp_path / "both.json", rows + swapped), [stored], bootstrap=0)
    assert (result["n"], result["agreement"]) == (80, 1.0)
    assert result["position_bias"] == {"items_in_both_orders": 40,
                                       "first_listed_wins": pytest.approx(0.5)}  # consistent: no bias
    first = [{**r, "preference": 1.0} for r in rows + swapped]
    biased = agreement(_write(tmp_path / "first.json", first), [stored], bootstrap=0)
    assert biased["position_bias"]["first_listed_wins"] == 1.0 and biased["agreement"] == pytest.approx(0.5)


@pytest.mark.parametrize("bad, message", [
    (7, "item 3, field 'preference': 7 is not one of 0, 1, 1.5, 2"),
    (1.73, "item 3, field 'preference': 1.73"),
    ("2", "item 3, field 'preference': '2'"),
])
def test_a_preference_outside_the_outcomes_is_refused_naming_the_item(stored, tmp_path, bad, message):
    rows = _rows(stored)[:10]
    rows[3]["preference"] = bad
    judge = _write(tmp_path / "bad.json", rows)
    with pytest.raises(ValueError, match=f"bad.json, {message}"):
        agreement(judge, [stored])


def test_missing_preferences_are_counted_not_dropped_silently(stored, tmp_path):
    rows = _rows(stored)[:30]
    for row in rows[:5]:
        del row["preference"]
    result = agreement(_write(tmp_path / "j.json", rows), [stored], bootstrap=0)
    decided = sum(r.get("preference") is not None for r in rows)
    assert result["judge_missing_preference"] == 5 and result["n"] == decided
    annotated_reference = sum(r.get("preference") is not None for r in _rows(stored))
    assert result["reference_without_judgment"] == annotated_reference - decided  # counted, not silently dropped


def test_no_item_in_common_is_an_error_naming_both_files(stored, tmp_path, capsys):
    other = _write(tmp_path / "other.json", [{"instruction": "x", "output_1": "a", "output_2": "b", "preference": 1}])
    code = main(["judge", "agreement", "--annotations", str(other), "--reference", str(stored),
                 "--out", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert code == 2 and "other.json" in err and "annotations.json" in err and "no annotated item in common" in err
    assert err.count("\n") == 1 and not (tmp_path / "out.json").exists()


def test_a_local_judge_runs_on_stored_pairs_through_the_cache(tmp_path, tiny_model_dir, mirror):
    """--judge NAME: the config's judge judges both outputs of the first 3 stored pairs; the rerun pays nothing."""
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"profile": "t", "device": "cpu", "models": {"tiny": {"source": "tiny"}},
                                  "judges": {"local": {"kind": "local", "model": "tiny", "max_tokens": 4}},
                                  "generation": {"backend": "transformers"}, "experiments": {}}))
    args = ["judge", "agreement", "--judge", "local", "--config", str(config), "--model", str(tiny_model_dir),
            "--reference-stored", "cut-13b", "--limit", "3", "--bootstrap", "50", "--mirror", str(mirror),
            "--out", str(tmp_path / "agreement.json")]
    assert main(args) == 0
    first = json.loads((tmp_path / "agreement.json").read_text())
    annotations = json.loads((tmp_path / "agreement.annotations.json").read_text())
    assert first["n"] == first["pairs_judged"] == len(annotations) == 3
    assert first["judging"]["calls_now"] == 6 and {a["preference"] for a in annotations} <= {1.0, 1.5, 2.0}
    assert main(args) == 0
    second = json.loads((tmp_path / "agreement.json").read_text())
    assert second["judging"]["calls_now"] == 0 and second["agreement"] == first["agreement"]
    with pytest.raises(SystemExit) as refused:  # argparse: one line, status 2
        main(args[:-2] + ["--limit", "0", "--out", str(tmp_path / "x.json")])
    assert refused.value.code == 2 and not (tmp_path / "x.json").exists()
