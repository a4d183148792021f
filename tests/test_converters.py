"""Converters on records written in each source's documented schema, and malformed input for every converter.

Every bad record must stop with an error that names the file, the record and the field.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from repro.data import DataError, converters


def _summary_line(passage, questions):
    return {"data": {"passage": {"text": passage}, "questions": questions}}


def _answer(text, rating=7, critiques=None, skip=None):
    feedback = {"rating": rating, "critiques": critiques}
    if skip is not None:
        feedback["skip"] = skip
    return {"answer": text, "feedback": feedback}


def _write_gz(path: Path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
    return path


def test_summarization_follows_the_released_rules(tmp_path):
    lines = [
        _summary_line("P1", [
            # top-ranked answer (ranking 3) has no critiques -> positive
            {"question": "Q1", "rankings": [1, 3], "answers": [_answer("worse"), _answer("best", 7)]},
            # top-ranked answer has two critiques -> negative, judgment joined, refinement of the LAST critique
            {"question": "Q2", "rankings": [5, 2], "answers": [
                _answer("flawed", 3, [{"text": "Misses A.", "refinement": "r1"},
                                      {"text": "Misses B.", "refinement": "r2"}]),
                _answer("other")]},
        ]),
        _summary_line("P2", [
            {"question": "Q3", "rankings": [1], "answers": [_answer("skipped", skip=True)]},  # skip rule 1
            {"question": "Q4", "rankings": [1], "answers": [_answer("")]},  # skip rule 2: empty answer
            {"question": "Q5", "rankings": [1], "answers": [  # skip rule 3: empty last refinement
                _answer("x", 2, [{"text": "c1", "refinement": "fine"}, {"text": "c2", "refinement": ""}])]},
            {"question": "Q6", "rankings": [1], "answers": [_answer("kept", 7, [])]},  # [] critiques -> positive
        ]),
    ]
    rows, stats = converters.summarization(_write_gz(tmp_path / "train.jsonl.gz", lines))
    assert [r["output"] for r in rows] == ["best", "flawed", "kept"]
    assert rows[0]["instruction"] == "P1\nQ1" and rows[0]["judgment"] is None
    assert rows[1]["judgment"] == "Misses A. Misses B." and rows[1]["refinement"] == "r2" and rows[1]["score"] == 1
    assert [r["source_index"] for r in rows] == [0, 1, 5]
    assert stats == {"read": 6, "kept": 3, "skipped": {
        "feedback.skip is set": 1, "empty top-ranked answer": 1, "empty refinement of the last critique": 1}}


def test_summarization_uncritiqued_answer_must_have_rating_7(tmp_path):
    lines = [_summary_line("P", [{"question": "Q", "rankings": [1], "answers": [_answer("a", 5, None)]}])]
    with pytest.raises(DataError, match=r"train.jsonl.gz.*line 0, question 0, answer 0.*'feedback.rating'"):
        converters.summarization(_write_gz(tmp_path / "train.jsonl.gz", lines))


def _uf_line(instruction, completions):
    return {"source": "evol_instruct", "instruction": instruction, "models": [c.get("model") for c in completions],
            "completions": completions, "correct_answers": [], "incorrect_answers": []}


def _completion(response, score, critique="crit", model="m"):
    return {"model": model, "principle": "helpfulness", "custom_system_prompt": "", "response": response,
            "annotations": {}, "critique": critique, "overall_score": score, "fine-grained_score": score / 2}


def test_ultrafeedback_score_rule_and_empty_responses(tmp_path):
    path = tmp_path / "evol_instruct.jsonl"
    path.write_text(json.dumps(_uf_line("Do X", [
        _completion("good", 8.5, "Great job."), _completion("ok", 7, "Fine."), _completion("bad", 4, "Wrong."),
        _completion("  ", 9),
    ])) + "\n")
    rows, stats = converters.ultrafeedback([path])
    assert [r["output"] for r in rows] == ["good", "ok", "bad"]
    assert [r["judgment"] for r in rows] == [None, None, "Wrong."]  # score >= 7 is positive, judgment dropped
    assert [r["score"] for r in rows] == [8.5, 7, 4]
    assert stats == {"read": 4, "kept": 3, "skipped": {"empty response": 1}}


def test_judged_alpaca_score_rule_and_input(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([
        {"instruction": "I", "input": "ctx", "output": "o", "judgment": "bad", "score": 8},
        {"instruction": "I", "input": None, "output": "o", "judgment": "bad", "score": 1},
        {"instruction": "I", "input": "", "output": "o", "judgment": None},
    ]))
    rows, _ = converters.judged_alpaca(path)
    assert [r["judgment"] for r in rows] == [None, "bad", None]
    assert [r["input"] for r in rows] == ["ctx", "", ""]


# ------------------------------------------------------------------ malformed input, every converter

def _shepherd_files(tmp_path, feed, raw):
    a, b = tmp_path / "human_data_for_model.jsonl", tmp_path / "human_data_raw.jsonl"
    a.write_text("".join(json.dumps(x) + "\n" for x in feed))
    b.write_text("".join(json.dumps(x) + "\n" for x in raw))
    return a, b


GOOD_FEED = {"question": "q", "answer": "a", "feedback": "f"}
GOOD_RAW = {"metadata": {"context": "q", "output_candidate": "a", "output_correct": "c"}}


@pytest.mark.parametrize("feed,raw,where,field", [
    ([GOOD_FEED, {"question": "q", "feedback": "f"}], [GOOD_RAW, GOOD_RAW], "line 1", "answer"),
    ([{"question": "q", "answer": 3, "feedback": "f"}], [GOOD_RAW], "line 0", "answer"),
    ([{"question": "q", "answer": "", "feedback": "f"}], [GOOD_RAW], "line 0", "answer"),
    ([GOOD_FEED], [{"metadata": {"context": "other", "output_candidate": "a"}}], "line 0", "metadata.context"),
    ([GOOD_FEED], [{"metadata": {"context": "q", "output_candidate": "b"}}], "line 0", "metadata.output_candidate"),
])
def test_shepherd_malformed(tmp_path, feed, raw, where, field):
    a, b = _shepherd_files(tmp_path, feed, raw)
    with pytest.raises(DataError) as err:
        converters.shepherd(a, b)
    assert err.value.file.endswith(".jsonl") and err.value.record == where and err.value.field == field
    assert where in str(err.value) and f"'{field}'" in str(err.value) and "human_data" in str(err.value)


def test_shepherd_misaligned_line_counts(tmp_path):
    a, b = _shepherd_files(tmp_path, [GOOD_FEED, GOOD_FEED], [GOOD_RAW])
    with pytest.raises(DataError, match="not line-aligned: 2 lines .* 1 in"):
        converters.shepherd(a, b)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "human_data_for_model.jsonl"
    path.write_text(json.dumps(GOOD_FEED) + "\n{not json\n")
    with pytest.raises(DataError, match=r"human_data_for_model.jsonl, line 2: invalid JSON"):
        converters.shepherd(path, path)


def _json_file(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


def _jsonl_file(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ARC_GOOD = {"id": "x", "question": {"stem": "s", "choices": [{"text": "t", "label": "A"}]}, "answerKey": "A"}
HS_GOOD = {"ind": 0, "activity_label": "a", "ctx_a": "c", "ctx_b": "d", "ctx": "c d", "endings": ["e1", "e2"],
           "source_id": "", "split": "val", "split_type": "", "label": 1}
TQA_GOOD = {"question": "q", "mc1_targets": {"a": 1, "b": 0}, "mc2_targets": {"a": 1, "b": 0}}
AE_GOOD = {"instruction": "i", "output": "o", "generator": "g", "dataset": "d"}
SUMMARY_GOOD = _summary_line("P", [{"question": "Q", "rankings": [1], "answers": [_answer("a")]}])


@pytest.mark.parametrize("convert,make,bad,where,field", [
    (converters.judged_alpaca, _json_file, [{"instruction": "i", "input": "", "judgment": None}], "record 0", "output"),
    (converters.judged_alpaca, _json_file, [{"instruction": "i", "output": "", "judgment": None}], "record 0",
     "output"),
    (converters.judged_alpaca, _json_file, [{"instruction": "i", "output": "o", "judgment": 5}], "record 0",
     "judgment"),
    (converters.judged_alpaca, _json_file, {"not": "a list"}, None, None),
    (converters.stanford_alpaca, _json_file, [{"input": "", "output": "o"}], "record 0", "instruction"),
    (converters.arc, _jsonl_file, [ARC_GOOD, {**ARC_GOOD, "answerKey": "Z"}], "line 1", "answerKey"),
    (converters.arc, _jsonl_file, [{**ARC_GOOD, "question": {"choices": []}}], "line 0", "question.stem"),
    (converters.hellaswag, _jsonl_file, [{**HS_GOOD, "label": 7}], "line 0", "label"),
    (converters.hellaswag, _jsonl_file, [{k: v for k, v in HS_GOOD.items() if k != "ctx"}], "line 0", "ctx"),
    (converters.truthfulqa, _json_file, [TQA_GOOD, {**TQA_GOOD, "mc2_targets": {"a": 2}}], "record 1", "mc2_targets"),
    (converters.alpaca_eval, _json_file, [{**AE_GOOD, "generator": None}], "record 0", "generator"),
    (converters.summarization, _jsonl_file, [{"data": {"questions": []}}], "line 0", "data.passage.text"),
    (converters.summarization, _jsonl_file,
     [_summary_line("P", [{"question": "Q", "rankings": [1, 2], "answers": [_answer("a")]}])],
     "line 0, question 0", "rankings"),
])
def test_malformed_records_name_file_record_field(tmp_path, convert, make, bad, where, field):
    path = make(tmp_path, "input.json", bad)
    with pytest.raises(DataError) as err:
        convert(path)
    assert err.value.file == str(path) and "input.json" in str(err.value)
    assert err.value.record == where and err.value.field == field


def test_ultrafeedback_malformed(tmp_path):
    path = _jsonl_file(tmp_path, "flan.jsonl", [_uf_line("I", [{**_completion("r", 5), "overall_score": "high"}])])
    with pytest.raises(DataError) as err:
        converters.ultrafeedback([path])
    assert err.value.record == "line 0, completion 0" and err.value.field == "overall_score"


def test_mmlu_malformed(tmp_path):
    path = tmp_path / "anatomy_test.csv"
    path.write_text("q,a,b,c,d,A\nq2,a,b,c,d,E\n")
    with pytest.raises(DataError) as err:
        converters.mmlu([path])
    assert err.value.record == "row 1" and err.value.field == "answer" and "anatomy_test.csv" in str(err.value)
    path.write_text("q,a,b,c\n")
    with pytest.raises(DataError, match="row 0: expected 6 columns"):
        converters.mmlu([path])


def test_unknown_data_set_name(store):
    with pytest.raises(DataError, match="unknown data set 'shepard'.*shepherd"):
        converters.prepare("shepard", store)


def test_instances_reject_an_empty_response():
    from repro.data import build_instances

    with pytest.raises(DataError, match="record 1, field 'output': empty response"):
        build_instances([{"instruction": "i", "output": "o", "judgment": None, "source_index": 0},
                         {"instruction": "i", "output": " ", "judgment": "j", "source_index": 1}], source="x.jsonl")
