"""The paper path with the paper's own tokenizer: the LLaMA-2 tokenizer against SentencePiece, `repro data
tokenize` against an independent implementation of the released tokenisation on every instance of every paper
experiment whose data is in the mirror, the three over-long online responses, and bad tokenizer files."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import yaml

from repro.cli import main
from repro.config import load_config
from repro.data import DataStore, prepare
from repro.data.experiment import experiment_instances, records_from_workflow
from repro.data.objectives import TRL_OBJECTIVES
from repro.data.tokenizer import load_tokenizer

from helpers import linked_mirror

ROOT = Path(__file__).resolve().parent.parent
CUTOFF = 2048
TRAINING_SETS = ("shepherd", "cut-iter1", "cut-iter2", "cut-iter3", "cut-iter4", "cut-iter5")
# the released templates, written out again here (the test must not read them from the code under test)
PLAIN = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
         "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")
JUDGE = ("Below is an instruction that describes a task. Write a response to the instruction and the response "
         "should match the corresponding judgment.\n\n### Instruction:\n{instruction}\n\n### Judgment:\n"
         "{judgment}\n\n### Response:\n")


@pytest.fixture(scope="module")
def sp(mirror):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(mirror / "tokenizers/llama-2/tokenizer.model"))


@pytest.fixture(scope="module")
def llama2(store):
    return load_tokenizer("llama-2-tokenizer", store)


def test_llama2_tokenizer_equals_sentencepiece_on_every_training_text(store, sp, llama2):
    """Every prompt (plain and judgment), response and refinement of every training set in the mirror."""
    texts = []
    for name in TRAINING_SETS:
        rows, _ = prepare(name, store)
        for r in rows:
            instruction = f"{r['instruction']}\n{r['input']}" if r["input"] else r["instruction"]
            texts += [PLAIN.format(instruction=instruction), r["output"]]
            if r["judgment"] is not None:
                texts.append(JUDGE.format(instruction=instruction, judgment=r["judgment"]))
            if r.get("refinement"):
                texts.append(r["refinement"])
    assert len(texts) > 15000
    ours = llama2(texts)["input_ids"]
    reference = [[1] + ids for ids in sp.encode(texts)]
    mismatched = [t[:60] for t, a, b in zip(texts, ours, reference) if a != b]
    assert not mismatched, f"{len(mismatched)} texts differ, e.g. {mismatched[:3]}"


def test_llama2_tokenizer_is_the_2023_legacy_fast_tokenizer(llama2, sp, tmp_path):
    assert (llama2.bos_token_id, llama2.eos_token_id, llama2.pad_token_id, len(llama2)) == (1, 2, None, 32000)
    text = " leading spaces,  doubled spaces\n\nand a newline: 日本 🤖"
    ids = llama2(text)["input_ids"]
    assert ids == [1] + sp.encode(text) and ids[-1] != 2  # BOS prepended, EOS never appended
    assert llama2.decode(ids, skip_special_tokens=True) == text
    llama2.save_pretrained(tmp_path)  # what a trained adapter and a merged model carry
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path)(text)["input_ids"] == ids


# ------------------------------------------------------------------ the released tokenisation, independently

def released_tokenize(sp, text: str, add_eos: bool) -> tuple[list[int], int]:
    """`tokenize` of finetune_unlikelihood.py: slow LLaMA tokenizer (BOS), keep the last `cutoff` tokens, then
    append EOS. Returns (ids, number of tokens cut)."""
    ids = [1] + sp.encode(text)
    overflow = max(0, len(ids) - CUTOFF)
    ids = ids[overflow:]
    if add_eos and ids[-1] != 2:
        ids.append(2)
    return ids, overflow


def released_sequence(sp, prompt: str, response: str) -> tuple[list[int], list[int]]:
    """`generate_and_tokenize_prompt` for one prompt: mask the prompt's tokens net of the truncation."""
    ids, overflow_full = released_tokenize(sp, prompt + response, add_eos=True)
    user, overflow_user = released_tokenize(sp, prompt, add_eos=False)  # add_eos_token False (README)
    user_len = len(user) - (overflow_full - overflow_user)
    labels = list(ids)
    if user_len > 0:
        labels[:user_len] = [-100] * user_len
    return ids, labels


def released_cut_rows(raw: list[dict], downsample: float | None, sp) -> list[dict]:
    """The released data loop: judgment dropped when score >= 7, input folded under the instruction, negatives
    get [judgment prompt, plain prompt], positives [plain prompt]; then the downsampling pops."""
    processed, positives = [], []
    for x in raw:
        judgment = None if x.get("score") is not None and x["score"] >= 7 else x["judgment"]
        instruction = f"{x['instruction']}\n{x['input']}" if x.get("input") else x["instruction"]
        prompts = ([JUDGE.format(instruction=instruction, judgment=judgment), PLAIN.format(instruction=instruction)]
                   if judgment is not None else [PLAIN.format(instruction=instruction)])
        if judgment is None:
            positives.append(len(processed))
        processed.append((prompts, x["output"]))
    if downsample is not None:  # released default -1: no downsampling
        random.seed(42)
        n_keep = int((len(processed) - len(positives)) * downsample)
        if n_keep < len(positives):
            keep = random.sample(positives, n_keep)
            for idx in sorted(positives, reverse=True):
                if idx not in keep:
                    processed.pop(idx)
    rows = []
    for prompts, output in processed:
        seqs = [released_sequence(sp, p, output) for p in prompts]
        rows.append({"input_ids": seqs[0][0], "labels": seqs[0][1],
                     "misalign_input_ids": seqs[1][0] if len(seqs) > 1 else None,
                     "misalign_labels": seqs[1][1] if len(seqs) > 1 else None})
    return rows


def raw_records(mirror: Path, dataset: str) -> list[dict]:
    """The source files read directly (Shepherd: question/answer/feedback, score 1, as the conversion script)."""
    if dataset == "shepherd":
        rows = [json.loads(line) for line in open(mirror / "shepherd/human_data_for_model.jsonl")]
        return [{"instruction": r["question"], "input": "", "output": r["answer"], "judgment": r["feedback"],
                 "score": 1} for r in rows]
    k = int(dataset.removeprefix("cut-iter"))
    return json.loads((mirror / f"cut/iter/train-alpaca-sample-iter{k}.json").read_text())


def released_mle_row(sp, instance: dict) -> dict:
    """MLE objectives have no released trainer: the released tokenisation of the instance's prompt and target
    (Forward Prediction: the joint between response and judgment is not trained)."""
    if instance.get("continuation") is None:
        ids, labels = released_sequence(sp, instance["prompt"], instance["response"])
    else:
        prompt, response, joint = instance["prompt"], instance["response"], instance["continuation_prompt"]
        ids, labels = released_sequence(sp, prompt, response + joint + instance["continuation"])
        n_prompt = len(sp.encode(prompt)) + 1
        start = n_prompt + len(sp.encode(prompt + response)) - len(sp.encode(prompt))
        end = n_prompt + len(sp.encode(prompt + response + joint)) - len(sp.encode(prompt))
        labels[start:end] = [-100] * (end - start)
    return {"input_ids": ids, "labels": labels, "misalign_input_ids": None, "misalign_labels": None}


def _tokenize(tmp_path: Path, config: str, experiment: str, mirror: Path, *extra) -> tuple[list[dict], dict]:
    out = tmp_path / f"{experiment}.jsonl"
    assert main(["data", "tokenize", "--config", config, "--experiment", experiment, "--out", str(out),
                 "--mirror", str(mirror), *extra]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return rows, json.loads(out.with_name(f"{experiment}.meta.json").read_text())


def test_every_paper_instance_has_the_released_ids_and_labels(tmp_path, mirror, sp, monkeypatch):
    """All of them, not a sample: each distinct instance set of config/paper.yaml whose data is in the mirror
    (Shepherd, the replayed iterations, their ablations and sweeps, baselines, AI judges), LLaMA-2 tokenizer."""
    monkeypatch.delenv("REPRO_DATA_MIRROR", raising=False)
    config_path = str(ROOT / "config/paper.yaml")
    config = load_config(config_path)
    in_mirror = {"shepherd", *(f"cut-iter{k}" for k in range(1, 6)), "cut-iter1-3", "cut-iter1-5"}
    distinct: dict[tuple, list[str]] = {}
    for name, exp in config.experiments.items():
        training = config.experiment_training(name)
        if (exp.dataset not in in_mirror or records_from_workflow(config, name)
                or training.objective in TRL_OBJECTIVES
                or config.models[exp.base_model].tokenizer != "llama-2-tokenizer"):
            continue
        key = (exp.dataset, training.objective, training.downsample, training.seed, exp.instructions,
               training.cutoff_len, training.long_responses)
        distinct.setdefault(key, []).append(name)
    covered = {n for names in distinct.values() for n in names}
    assert {"cut-online-iter1", "cut-online-iter5", "cut-shepherd-llama2-chat-13b", "cut-shepherd-llama2-13b-dynamic",
            "align-p-ratio-downsamplefull", "cut-shepherd-llama2-chat-13b-no-l1", "hindsight-shepherd-llama2-13b",
            "fp-shepherd-llama2-chat-13b", "ai-judge-3000"} <= covered

    compared = 0
    for (dataset, objective, downsample, seed, _, cutoff, long_responses), names in distinct.items():
        assert (seed, cutoff, long_responses) == (42, CUTOFF, "keep")
        rows, meta = _tokenize(tmp_path, config_path, names[0], mirror)
        if objective == "cut":
            expected = released_cut_rows(raw_records(mirror, dataset), downsample, sp)
        else:
            instances, _ = experiment_instances(config, names[0], DataStore(mirror=mirror))
            expected = [released_mle_row(sp, i) for i in instances]
        assert len(rows) == len(expected) == meta["examples"], names[0]
        for i, (got, want) in enumerate(zip(rows, expected)):
            assert {k: got[k] for k in want} == want, f"{names[0]}: instance {i} (source_index {got['source_index']})"
        compared += len(rows)
    assert compared > 9000


OVERLONG = {"cut-online-iter1": 888, "cut-online-iter2": 750, "cut-online-iter5": 230}  # (source_index)


@pytest.mark.parametrize("experiment,source_index", sorted(OVERLONG.items()))
def test_overlong_online_responses_train_as_released(tmp_path, mirror, sp, experiment, source_index, monkeypatch):
    """The three real responses that alone fill 2048 tokens: kept, truncated from the left through the whole
    prompt, nothing masked, Align-N and Misalign identical; with `long_responses: drop` left out and counted."""
    monkeypatch.delenv("REPRO_DATA_MIRROR", raising=False)
    config = str(ROOT / "config/paper.yaml")
    rows, meta = _tokenize(tmp_path, config, experiment, mirror)
    row = next(r for r in rows if r["source_index"] == source_index)
    raw = raw_records(mirror, f"cut-iter{experiment[-1]}")[source_index]
    instruction = f"{raw['instruction']}\n{raw['input']}" if raw["input"] else raw["instruction"]
    full = [1] + sp.encode(JUDGE.format(instruction=instruction, judgment=raw["judgment"]) + raw["output"])
    assert row["kind"] == "align_n"
    assert row["input_ids"] == full[-CUTOFF:] + [2] and len(row["input_ids"]) == CUTOFF + 1
    assert row["labels"] == row["input_ids"]  # nothing masked
    assert row["misalign_input_ids"] == row["input_ids"] and row["misalign_labels"] == row["labels"]
    assert meta["overlong_kept_truncated"] == 1 and meta["overlong_dropped"] == 0

    drop = tmp_path / "drop.yaml"
    data = yaml.safe_load(Path(config).read_text())
    data["training"]["long_responses"] = "drop"
    drop.write_text(yaml.safe_dump(data))
    dropped_rows, dropped_meta = _tokenize(tmp_path / "d", str(drop), experiment, mirror)
    assert source_index not in {r["source_index"] for r in dropped_rows}
    assert len(dropped_rows) == len(rows) - 1
    assert dropped_meta["overlong_dropped"] == 1 and dropped_meta["overlong_kept_truncated"] == 0
    assert len(dropped_meta["dropped_positions"]) == 1


@pytest.mark.parametrize("corrupt", [False, True], ids=["missing", "checksum"])
def test_bad_tokenizer_file_stops_with_path_and_sha256_and_writes_nothing(tmp_path, mirror, capsys, corrupt,
                                                                          monkeypatch):
    monkeypatch.delenv("REPRO_DATA_MIRROR", raising=False)
    tokenizer = ("tokenizers/llama-2/tokenizer.model",)
    broken = {"corrupted": tokenizer} if corrupt else {"missing": tokenizer}
    fake = linked_mirror(mirror, tmp_path / "mirror", **broken)
    out = tmp_path / "out" / "tokens.jsonl"
    code = main(["data", "tokenize", "--config", str(ROOT / "config/paper.yaml"), "--experiment", "cut-online-iter1",
                 "--out", str(out), "--mirror", str(fake)])
    err = capsys.readouterr().err
    assert code != 0
    assert str(fake / "tokenizers/llama-2/tokenizer.model") in err
    assert "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347" in err
    assert not out.parent.exists()


def test_tokenize_refuses_experiments_whose_records_a_run_produces(tmp_path, mirror, capsys, monkeypatch):
    monkeypatch.delenv("REPRO_DATA_MIRROR", raising=False)
    code = main(["data", "tokenize", "--config", str(ROOT / "config/paper.yaml"), "--experiment", "live-iter2",
                 "--out", str(tmp_path / "x.jsonl"), "--mirror", str(mirror)])
    assert code != 0 and "--instances" in capsys.readouterr().err
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_an_overlong_response_trains_as_likelihood_on_its_truncated_tokens(tmp_path, store, mirror):
    """The released behaviour end to end: a tiny Llama with the LLaMA-2 vocabulary trains one step on iteration
    1's over-long negative: identical Align-N and Misalign rows, so nothing is flagged and the CUT loss
    (nll + ul) / 2 equals the likelihood term alone."""
    from repro.config import Training
    from repro.cut.train import TrainJob, train
    from repro.data import build_instances
    from repro.io import write_jsonl
    from repro.models.tiny import build_tiny_llama2

    model = build_tiny_llama2(tmp_path / "model", store)
    rows, _ = prepare("cut-iter1", store)
    instances, _ = build_instances([r for r in rows if r["source_index"] == 888])
    write_jsonl(tmp_path / "instances.jsonl", instances)
    training = Training(batch_size=1, micro_batch_size=1, max_steps=1, warmup_steps=0, precision="fp32",
                        lora={"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["gate_proj", "down_proj", "up_proj"]})
    out = tmp_path / "run" / "adapter"
    train(TrainJob(str(model), tmp_path / "instances.jsonl", out, training, device="cpu", progress=False,
                   tokenizer="llama-2-tokenizer", mirror=str(mirror)))
    step = json.loads((tmp_path / "run/train_log.jsonl").read_text().splitlines()[0])
    assert step["flagged_rate"] == 0 and step["tokens"] == 2 * (CUTOFF + 1)
    assert step["loss"] == pytest.approx(step["nll"], rel=1e-6) and step["ul"] == pytest.approx(step["nll"], rel=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tokenization"]["overlong_kept_truncated"] == 1
    assert manifest["tokenization"]["tokenizer"] == "llama-2-tokenizer"
