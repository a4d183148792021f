"""Converters from each source's own schema to the project's records, doing exactly what the released
`wwxu21/CUT/scripts/convert2alpaca.py` and `finetune_unlikelihood.py` do (docs/fidelity.md, docs/method.md).

Every converter returns ``(rows, stats)``: rows are JSON-ready dicts, stats count what was read, kept, and
dropped by each skip rule of the released code, so nothing disappears silently.
"""
from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from repro.data.records import FieldReader, Record, apply_positive_rule
from repro.data.sources import MMLU_SUBJECTS, ULTRAFEEDBACK_PARTS
from repro.errors import DataError
from repro.io import read_json, read_jsonl


class Stats:
    def __init__(self):
        self.read = 0
        self.skipped: Counter[str] = Counter()

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def as_dict(self, kept: int) -> dict:
        return {"read": self.read, "kept": kept, "skipped": dict(self.skipped)}


def _json_list(path: Path) -> list:
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(path, None, None, f"expected a JSON list of records, got {type(data).__name__}")
    return data


def _jsonl_any(path: Path) -> list[dict]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            rows = []
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise DataError(path, f"line {number}", None, f"invalid JSON ({err.msg})") from None
            return rows
    return read_jsonl(path)


# ---------------------------------------------------------------- training data (normalised records)

def shepherd(for_model: Path, raw: Path) -> tuple[list[dict], dict]:
    """`process_Shepherd`: line i of the two files is one example; the released asserts become errors."""
    items, raws = read_jsonl(for_model), read_jsonl(raw)
    if len(items) != len(raws):
        raise DataError(raw, None, None, f"Shepherd files are not line-aligned: {len(items)} lines in "
                        f"{for_model.name}, {len(raws)} in {raw.name}")
    stats, rows = Stats(), []
    for i, (item, raw_item) in enumerate(zip(items, raws)):
        stats.read += 1
        a, b = FieldReader(for_model, i, item, "line"), FieldReader(raw, i, raw_item, "line")
        question = a.get("question", str, nonempty=True)
        answer = a.get("answer", str, nonempty=True)
        feedback = a.get("feedback", str, nonempty=True)
        if b.get("metadata.context", str) != question:
            b.fail("metadata.context", f"does not match 'question' of line {i} in {for_model.name} (misaligned files)")
        if b.get("metadata.output_candidate", str) != answer:
            b.fail("metadata.output_candidate",
                   f"does not match 'answer' of line {i} in {for_model.name} (misaligned files)")
        refinement = b.get("metadata.output_correct", str, optional=True)
        rows.append(Record(question, "", answer, apply_positive_rule(feedback, 1), i, refinement, 1,
                           {"dataset": item.get("dataset")}).to_json())
    return rows, stats.as_dict(len(rows))


def judged_alpaca(path: Path) -> tuple[list[dict], dict]:
    """The released alpaca-style judged files (online iterations, re-annotated UltraFeedback):
    a list of {instruction, input, output, judgment (null = positive)[, score][, i_ans]}."""
    stats, rows = Stats(), []
    for i, item in enumerate(_json_list(path)):
        stats.read += 1
        f = FieldReader(path, i, item)
        instruction = f.get("instruction", str, nonempty=True)
        input_text = f.get("input", str, optional=True) or ""
        output = f.get("output", str, nonempty=True)
        judgment = f.get("judgment", str, optional=True)
        score = f.get("score", (int, float), optional=True)
        meta = {"id": item["id"]} if "id" in item else {}
        rows.append(Record(instruction, input_text, output, apply_positive_rule(judgment, score), i,
                           f.get("i_ans", str, optional=True), score, meta).to_json())
    return rows, stats.as_dict(len(rows))


def judged_iterations(paths: list[Path]) -> tuple[list[dict], dict]:
    """Several judged files one after another; source_index runs on across them, meta names the file."""
    rows, read = [], 0
    for path in paths:
        part, stats = judged_alpaca(path)
        for row in part:
            row["meta"] = {**row["meta"], "file": path.name, "index_in_file": row["source_index"]}
            row["source_index"] += read
        rows += part
        read += stats["read"]
    return rows, {"read": read, "files": [p.name for p in paths], "kept": len(rows)}


def summarization(path: Path) -> tuple[list[dict], dict]:
    """`process_open_summary`: per question, the top-ranked answer; skip if feedback.skip or the answer is empty;
    no critiques -> positive (rating must be 7); else judgment = the critiques' texts joined by spaces and the
    refinement of the last critique, skipped if that refinement is empty."""
    stats, rows = Stats(), []
    index = -1
    for line_no, item in enumerate(_jsonl_any(path)):
        f = FieldReader(path, line_no, item, "line")
        passage = f.get("data.passage.text", str)
        for q_no, question in enumerate(f.get("data.questions", list)):
            index += 1
            stats.read += 1
            q = FieldReader(path, q_no, question, f"line {line_no}, question")
            text = q.get("question", str)
            rankings = q.get("rankings", list)
            answers = q.get("answers", list)
            if not rankings or len(rankings) != len(answers):
                q.fail("rankings", f"expected one ranking per answer ({len(answers)}), got {len(rankings)}")
            best = rankings.index(max(rankings))
            a = FieldReader(path, best, answers[best], f"line {line_no}, question {q_no}, answer")
            output = a.get("answer", str)
            if a.get("feedback.skip", bool, optional=True) is True:
                stats.skip("feedback.skip is set")
                continue
            if output == "":
                stats.skip("empty top-ranked answer")
                continue
            critiques = a.get("feedback.critiques", list, optional=True)
            instruction = f"{passage}\n{text}"
            meta = {"line": line_no, "question": q_no}
            if not critiques:
                if a.get("feedback.rating", (int, float)) != 7:
                    a.fail("feedback.rating", "an answer without critiques must have rating 7 (released assert)")
                rows.append(Record(instruction, "", output, None, index, None, None, meta).to_json())
                continue
            texts, refinement = [], None
            for c_no, critique in enumerate(critiques):
                c = FieldReader(path, c_no, critique, f"line {line_no}, question {q_no}, critique")
                texts.append(c.get("text", str))
                refinement = c.get("refinement", str)
            if refinement == "":
                stats.skip("empty refinement of the last critique")
                continue
            judgment = "".join(" " + t for t in texts).strip()
            rows.append(Record(instruction, "", output, apply_positive_rule(judgment, 1), index, refinement, 1,
                               meta).to_json())
    return rows, stats.as_dict(len(rows))


def ultrafeedback(paths: list[Path]) -> tuple[list[dict], dict]:
    """UltraFeedback with its own critiques (CUT-UF): one record per completion, judgment = critique,
    score = overall_score, so the released `score >= 7` rule makes it positive. Completions with an empty
    response are dropped and counted. `meta` keeps what DPO pairs need (instruction id, fine-grained score)."""
    stats, rows = Stats(), []
    index = -1
    for path in paths:
        for line_no, item in enumerate(_jsonl_any(path)):
            f = FieldReader(path, line_no, item, "line")
            instruction = f.get("instruction", str, nonempty=True)
            for c_no, completion in enumerate(f.get("completions", list)):
                index += 1
                stats.read += 1
                c = FieldReader(path, c_no, completion, f"line {line_no}, completion")
                response = c.get("response", str)
                if not response.strip():
                    stats.skip("empty response")
                    continue
                score = c.get("overall_score", (int, float))
                critique = c.get("critique", str)
                meta = {"file": path.name, "line": line_no, "completion": c_no, "model": completion.get("model"),
                        "fine_grained_score": completion.get("fine-grained_score")}
                rows.append(Record(instruction, "", response, apply_positive_rule(critique, score), index, None,
                                   score, meta).to_json())
    return rows, stats.as_dict(len(rows))


def stanford_alpaca(path: Path) -> tuple[list[dict], dict]:
    """Stanford Alpaca instructions (the pool of new online-iteration prompts); outputs kept, no judgment."""
    stats, rows = Stats(), []
    for i, item in enumerate(_json_list(path)):
        stats.read += 1
        f = FieldReader(path, i, item)
        rows.append(Record(f.get("instruction", str, nonempty=True), f.get("input", str, optional=True) or "",
                           f.get("output", str), None, i).to_json())
    return rows, stats.as_dict(len(rows))


# ---------------------------------------------------------------- evaluation data (the schemas lm-eval expects)

def arc(path: Path) -> tuple[list[dict], dict]:
    """ARC original jsonl -> HF `ai2_arc` schema {id, question, choices{text,label}, answerKey}."""
    stats, rows = Stats(), []
    for i, item in enumerate(read_jsonl(path)):
        stats.read += 1
        f = FieldReader(path, i, item, "line")
        identifier, stem = f.get("id", str), f.get("question.stem", str)
        choices = f.get("question.choices", list)
        texts, labels = [], []
        for j, choice in enumerate(choices):
            c = FieldReader(path, j, choice, f"line {i}, choice")
            texts.append(c.get("text", str))
            labels.append(c.get("label", str))
        answer = f.get("answerKey", str)
        if answer not in labels:
            f.fail("answerKey", f"'{answer}' is not one of the choice labels {labels}")
        rows.append({"id": identifier, "question": stem,
                     "choices": {"text": texts, "label": labels}, "answerKey": answer})
    return rows, stats.as_dict(len(rows))


def hellaswag(path: Path) -> tuple[list[dict], dict]:
    """HellaSwag jsonl -> HF `hellaswag` schema (label as a string, as the HF copy has it)."""
    stats, rows = Stats(), []
    for i, item in enumerate(read_jsonl(path)):
        stats.read += 1
        f = FieldReader(path, i, item, "line")
        endings = f.get("endings", list)
        label = f.get("label", (int, str))
        if str(label) not in {str(k) for k in range(len(endings))}:
            f.fail("label", f"'{label}' is not an index into {len(endings)} endings")
        rows.append({
            "ind": f.get("ind", int), "activity_label": f.get("activity_label", str), "ctx_a": f.get("ctx_a", str),
            "ctx_b": f.get("ctx_b", str), "ctx": f.get("ctx", str), "endings": endings,
            "source_id": f.get("source_id", str), "split": f.get("split", str),
            "split_type": f.get("split_type", str), "label": str(label),
        })
    return rows, stats.as_dict(len(rows))


def mmlu(files: list[Path]) -> tuple[list[dict], dict]:
    """MMLU original CSVs (no header: question, A, B, C, D, answer letter) -> HF `cais/mmlu` schema."""
    stats, rows = Stats(), []
    for path in files:
        subject = path.name.rsplit("_", 1)[0]
        with open(path, newline="", encoding="utf-8") as handle:
            for i, cells in enumerate(csv.reader(handle)):
                stats.read += 1
                if len(cells) != 6:
                    raise DataError(path, f"row {i}", None, f"expected 6 columns, got {len(cells)}")
                if cells[5] not in ("A", "B", "C", "D"):
                    raise DataError(path, f"row {i}", "answer", f"expected A-D, got '{cells[5]}'")
                rows.append({"question": cells[0], "subject": subject, "choices": cells[1:5],
                             "answer": "ABCD".index(cells[5])})
    return rows, stats.as_dict(len(rows))


def truthfulqa(path: Path) -> tuple[list[dict], dict]:
    """TruthfulQA mc_task.json -> HF `truthful_qa/multiple_choice` schema (choice order kept)."""
    stats, rows = Stats(), []
    for i, item in enumerate(_json_list(path)):
        stats.read += 1
        f = FieldReader(path, i, item)
        row = {"question": f.get("question", str, nonempty=True)}
        for key in ("mc1_targets", "mc2_targets"):
            targets = f.get(key, dict)
            if not targets or any(v not in (0, 1) for v in targets.values()):
                f.fail(key, "expected a non-empty map of answer -> 0/1")
            row[key] = {"choices": list(targets), "labels": [int(v) for v in targets.values()]}
        rows.append(row)
    return rows, stats.as_dict(len(rows))


def alpaca_eval(path: Path) -> tuple[list[dict], dict]:
    """AlpacaEval instructions with reference outputs, in alpaca_eval's own schema."""
    stats, rows = Stats(), []
    for i, item in enumerate(_json_list(path)):
        stats.read += 1
        f = FieldReader(path, i, item)
        rows.append({"instruction": f.get("instruction", str, nonempty=True), "output": f.get("output", str),
                     "generator": f.get("generator", str), "dataset": f.get("dataset", str)})
    return rows, stats.as_dict(len(rows))


# ---------------------------------------------------------------- the named data sets

Prepare = Callable[["DataStore"], tuple[list[dict], dict]]  # noqa: F821


def _file(source: str, path: str):
    return lambda store: store.path(source, path)


def _dataset_table() -> dict[str, tuple[str, Prepare]]:
    """NAME -> (kind, prepare). kind 'train' datasets give records; 'eval' datasets give benchmark rows."""
    table: dict[str, tuple[str, Prepare]] = {
        "shepherd": ("train", lambda s: shepherd(s.path("shepherd", "shepherd/human_data_for_model.jsonl"),
                                                 s.path("shepherd", "shepherd/human_data_raw.jsonl"))),
        "summarization-train": ("train", lambda s: summarization(
            s.path("summarization", "summarization/train.jsonl.gz"))),
        "summarization-test": ("train", lambda s: summarization(
            s.path("summarization", "summarization/test.jsonl.gz"))),
        "ultrafeedback": ("train", lambda s: ultrafeedback(
            [s.path("ultrafeedback", f"ultrafeedback/{p}.jsonl") for p in ULTRAFEEDBACK_PARTS])),
        "cut-ultrafeedback": ("train", lambda s: judged_alpaca(
            s.path("cut-ultrafeedback", "cut/UltraFeedback/train-alpaca_1000.json"))),
        "stanford-alpaca": ("train", lambda s: stanford_alpaca(
            s.path("stanford-alpaca", "stanford_alpaca/alpaca_data.json"))),
        "alpaca-eval": ("eval", lambda s: alpaca_eval(s.path("alpaca-eval", "alpaca_eval/alpaca_eval.json"))),
        "alpaca-eval-2": ("eval", lambda s: alpaca_eval(
            s.path("alpaca-eval", "alpaca_eval/alpaca_eval_gpt4_baseline.json"))),
        "hellaswag-validation": ("eval", lambda s: hellaswag(
            s.path("hellaswag", "hellaswag/data/hellaswag_val.jsonl"))),
        "truthfulqa-mc": ("eval", lambda s: truthfulqa(s.path("truthfulqa", "truthfulqa/data/mc_task.json"))),
    }
    for k in range(1, 6):
        table[f"cut-iter{k}"] = ("train", lambda s, k=k: judged_alpaca(
            s.path("cut", f"cut/iter/train-alpaca-sample-iter{k}.json")))
    for last in (3, 5):  # AI-judge training data (Figure 3): the GPT-4 judgments of iterations 1..3 / 1..5
        table[f"cut-iter1-{last}"] = ("train", lambda s, last=last: judged_iterations(
            [s.path("cut", f"cut/iter/train-alpaca-sample-iter{k}.json") for k in range(1, last + 1)]))
    for split, name in (("Train", "train"), ("Dev", "validation"), ("Test", "test")):
        table[f"arc-challenge-{name}"] = ("eval", lambda s, split=split: arc(
            s.path("arc", f"arc/ARC-Challenge/ARC-Challenge-{split}.jsonl")))
    for split in ("dev", "test"):
        table[f"mmlu-{split}"] = ("eval", lambda s, split=split: mmlu(
            [s.path("mmlu", f"mmlu/data/{split}/{subject}_{split}.csv") for subject in MMLU_SUBJECTS]))
    return table


DATASETS = _dataset_table()


def prepare(name: str, store) -> tuple[list[dict], dict]:
    try:
        _, run = DATASETS[name]
    except KeyError:
        raise DataError(None, None, None, f"unknown data set '{name}'; known: {', '.join(sorted(DATASETS))}") from None
    return run(store)
