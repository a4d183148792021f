"""Malformed input of every kind a user can hand the command line: each case must exit non-zero with ONE line
on stderr that names the file (and record / key) or the argument at fault, print no traceback, and write nothing.

The cases run the real `repro` entry point in this process (argparse, handlers, error reporting), each on its own
files in an empty folder; a few run as real processes to check the exit status the shell sees.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.cli import main

ROOT = Path(__file__).resolve().parent.parent
BASE = {"profile": "t", "device": "cpu", "models": {"tiny": {"source": "tiny"}},
        "training": {"batch_size": 4, "micro_batch_size": 2, "max_steps": 2, "warmup_steps": 0, "precision": "fp32"},
        "experiments": {"e": {"base_model": "tiny", "dataset": "shepherd"}},
        "judges": {"j": {"kind": "openai", "model": "gpt-4"}}}


def _set(config: dict, dotted: str, value) -> dict:
    config = json.loads(json.dumps(config))
    *path, last = dotted.split(".")
    node = config
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
    return config


# ------------------------------------------------------------------ configs: `repro config check FILE`

CONFIG_CASES = [  # (id, change, what the message must name)
    ("max-steps-negative", ("training.max_steps", -3), "training.max_steps"),
    ("epochs-zero", ("training.epochs", 0), "training.epochs"),
    ("alpha-negative", ("training.cut.alpha", -0.5), "training.cut.alpha"),
    ("threshold-negative", ("training.cut.threshold", -1.0), "training.cut.threshold"),
    ("gamma-negative", ("training.cut.gamma", -1.0), "training.cut.gamma"),
    ("lr-negative", ("training.learning_rate", -1e-4), "training.learning_rate"),
    ("lr-zero", ("training.learning_rate", 0.0), "training.learning_rate"),
    ("cutoff-zero", ("training.cutoff_len", 0), "training.cutoff_len"),
    ("lora-r-zero", ("training.lora.r", 0), "training.lora.r"),
    ("lora-dropout-above-one", ("training.lora.dropout", 1.5), "training.lora.dropout"),
    ("micro-batch-zero", ("training.micro_batch_size", 0), "training.micro_batch_size"),
    ("batch-not-multiple", ("training.batch_size", 5), "batch_size must be a multiple"),
    ("batch-size-a-word", ("training.batch_size", "eight"), "training.batch_size"),
    ("downsample-negative", ("training.downsample", -0.5), "training.downsample"),
    ("warmup-negative", ("training.warmup_steps", -1), "training.warmup_steps"),
    ("grad-norm-zero", ("training.max_grad_norm", 0.0), "training.max_grad_norm"),
    ("save-steps-zero", ("training.save_steps", 0), "training.save_steps"),
    ("objective-unknown", ("training.objective", "ppo"), "training.objective"),
    ("kto-micro-batch-one", ("experiments.e.training", {"objective": "kto", "micro_batch_size": 1}),
     "micro_batch_size >= 2"),
    ("dpo-beta-zero", ("training.dpo.beta", 0.0), "training.dpo.beta"),
    ("kto-beta-negative", ("training.kto.beta", -1.0), "training.kto.beta"),
    ("experiment-override-bad", ("experiments.e.training", {"max_steps": 0}), "experiments.e.training.max_steps"),
    ("init-from-cycle", ("experiments", {"a": {"base_model": "tiny", "dataset": "x", "init_from": "b"},
                                         "b": {"base_model": "tiny", "dataset": "x", "init_from": "a"}}), "cycle"),
    ("init-from-unknown", ("experiments.e.init_from", "nowhere"), "experiments.e.init_from"),
    ("base-model-unknown", ("experiments.e.base_model", "llama"), "experiments.e.base_model"),
    ("unknown-key", ("training.learning_rat", 1e-4), "training.learning_rat: unknown key"),
    ("hub-model-without-path", ("models.tiny", {"source": "hub"}), "'hub' model needs a 'path'"),
    ("max-new-tokens-zero", ("generation.max_new_tokens", 0), "generation.max_new_tokens"),
    ("top-p-zero", ("generation.top_p", 0.0), "generation.top_p"),
    ("temperature-negative", ("generation.temperature", -1.0), "generation.temperature"),
    ("judge-concurrency-zero", ("judges.j.max_concurrency", 0), "judges.j.max_concurrency"),
    ("judge-retries-negative", ("judges.j.max_retries", -1), "judges.j.max_retries"),
    ("judge-kind-unknown", ("judges.j.kind", "oracle"), "judges.j.kind"),
    ("judge-price-negative", ("judges.j.usd_per_1m_input_tokens", -1.0), "judges.j.usd_per_1m_input_tokens"),
    ("data-limit-zero", ("data.limit", 0), "data.limit"),
    ("alpaca-eval-limit-negative", ("evaluation.alpaca_eval.limit", -1), "evaluation.alpaca_eval.limit"),
    ("instructions-per-iteration-zero", ("online.instructions_per_iteration", 0),
     "online.instructions_per_iteration"),
    ("heldout-bootstrap-tiny", ("heldout", {"shepherd": {"blame_model": "tiny", "bootstrap": 5}}),
     "heldout.shepherd.bootstrap"),
    # third pass (issue 24): values without a meaning, a profile that escapes the project
    ("lr-infinite", ("training.learning_rate", float("inf")), "training.learning_rate"),
    ("lr-huge", ("training.learning_rate", 1.0e308), "training.learning_rate"),
    ("weight-decay-infinite", ("training.weight_decay", float("inf")), "training.weight_decay"),
    ("lora-alpha-huge", ("training.lora.alpha", 10 ** 20), "training.lora.alpha"),
    ("seed-negative", ("training.seed", -1), "training.seed"),
    ("seed-huge", ("training.seed", 1e23), "training.seed"),
    ("downsample-infinite", ("training.downsample", float("inf")), "training.downsample"),
    ("temperature-infinite", ("generation.temperature", float("inf")), "generation.temperature"),
    ("judge-timeout-infinite", ("judges.j.timeout_s", float("inf")), "judges.j.timeout_s"),
    ("profile-escapes", ("profile", "../../escaped"), "profile"),
    ("compare-unknown-run", ("heldout", {"shepherd": {"blame_model": "tiny", "compare": [
        {"run": "e", "against": "nowhere", "question": "q"}]}}), "heldout.shepherd.compare[0].against"),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_a_bad_config_value_is_refused_naming_file_and_key(case, tmp_path, capsys):
    name, (key, value), expected = case
    path = tmp_path / "in" / f"{name}.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(_set(BASE, key, value)))
    _refused(["config", "check", str(path)], tmp_path, capsys, [str(path), expected])


RAW_CONFIGS = [
    ("not-yaml", b"profile: [unclosed\n", "not valid YAML"),
    ("not-utf8", b"profile: t\ndescription: caf\xe9\n", "not UTF-8"),
    ("a-list", b"- profile\n- t\n", "a config is a mapping of keys, not list"),
    ("empty", b"", "profile"),
    ("duplicate-key", b"profile: t\nmodels: {}\nprofile: u\n", "key 'profile' is given twice"),
    ("use-yte", b"__use_yte__: true\nprofile: t\nmodels: {}\n", "__use_yte__"),
    ("alias-bomb", b"profile: t\nmodels: {}\nreport:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n".encode() for i in range(1, 9)), "anchors and aliases"),
    ("nested-too-deep", b"a: " + b"[" * 200_000 + b"]" * 200_000 + b"\n", "nested too deeply"),
]


@pytest.mark.parametrize("case", RAW_CONFIGS, ids=[c[0] for c in RAW_CONFIGS])
def test_an_unreadable_config_is_refused_naming_the_file(case, tmp_path, capsys):
    name, raw, expected = case
    path = tmp_path / "in" / f"{name}.yaml"
    path.parent.mkdir()
    path.write_bytes(raw)
    _refused(["config", "check", str(path)], tmp_path, capsys, [str(path), expected])


# ------------------------------------------------------------------ data files given to the commands

GOOD_RECORD = {"instruction": "Add 2 and 3.", "input": "", "output": "5", "judgment": "Correct, but terse.",
               "source_index": 0}


def _jsonl(rows) -> bytes:
    return b"".join((json.dumps(r) if not isinstance(r, bytes) else r.decode("latin-1")).encode("latin-1") + b"\n"
                    for r in rows)


DATA_CASES = [  # (id, file bytes, argv with {f} = the file and {out} = an output path, what the message names)
    ("records-bad-json", _jsonl([GOOD_RECORD]) + b'{"instruction": \n',
     ["data", "instances", "x", "--records", "{f}", "--out", "{out}"], ["line 2", "invalid JSON"]),
    ("records-not-utf8", _jsonl([GOOD_RECORD]) + b'{"instruction": "caf\xe9"}\n',
     ["data", "instances", "x", "--records", "{f}", "--out", "{out}"], ["line 2", "not UTF-8"]),
    ("records-row-a-list", _jsonl([GOOD_RECORD]) + b'["a", "b"]\n',
     ["data", "instances", "x", "--records", "{f}", "--out", "{out}"], ["line 2", "not a JSON object"]),
    ("records-no-instruction", _jsonl([{**GOOD_RECORD, "instruction": None}]),
     ["data", "instances", "x", "--records", "{f}", "--out", "{out}"], ["instruction"]),
    ("records-judgment-a-number", _jsonl([{**GOOD_RECORD, "judgment": 3}]),
     ["data", "instances", "x", "--records", "{f}", "--out", "{out}"], ["judgment"]),
    ("records-empty", b"",
     ["data", "instances", "x", "--records", "{f}", "--out", "{out}"], ["no training instances"]),
    ("records-kto-no-refinement", _jsonl([GOOD_RECORD]),
     ["data", "instances", "x", "--records", "{f}", "--out", "{out}", "--objective", "kto", "--kto-refinements"],
     ["refinement"]),
    ("judge-inputs-row-a-number", b"7\n",
     ["judge", "--config", "{config}", "--judge", "j", "--inputs", "{f}", "--out", "{out}"], ["line 1"]),
    ("judge-inputs-empty", b"",
     ["judge", "--config", "{config}", "--judge", "j", "--inputs", "{f}", "--out", "{out}"], ["no responses"]),
    ("judge-inputs-no-output", _jsonl([{"instruction": "x"}]),
     ["judge", "--config", "{config}", "--judge", "j", "--inputs", "{f}", "--out", "{out}"], ["output"]),
    ("prompts-no-instruction", _jsonl([{"id": 1, "input": "x"}]),
     ["generate", "--model", "{model}", "--prompts", "{f}", "--out", "{out}", "--backend", "transformers",
      "--no-progress"], ["instruction"]),
    ("prompts-empty", b"",
     ["generate", "--model", "{model}", "--prompts", "{f}", "--out", "{out}", "--backend", "transformers",
      "--no-progress"], ["no prompts"]),
    ("prompts-duplicate-ids", _jsonl([{"id": 1, "instruction": "a"}, {"id": 1, "instruction": "b"}]),
     ["generate", "--model", "{model}", "--prompts", "{f}", "--out", "{out}", "--backend", "transformers",
      "--no-progress"], ["not unique"]),
    ("prompts-not-utf8", b'{"id": 1, "instruction": "\xff\xfe"}\n',
     ["generate", "--model", "{model}", "--prompts", "{f}", "--out", "{out}", "--backend", "transformers",
      "--no-progress"], ["not UTF-8"]),
    ("annotations-not-a-list", b'{"instruction": "x"}',
     ["judge", "agreement", "--annotations", "{f}", "--reference", "{f}", "--out", "{out}"], ["JSON list"]),
    ("annotations-bad-preference", json.dumps([{"instruction": "x", "output_1": "a", "output_2": "b",
                                                 "preference": 7}]).encode(),
     ["judge", "agreement", "--annotations", "{f}", "--reference", "{f}", "--out", "{out}"],
     ["item 0", "preference"]),
    ("annotations-no-output-2", json.dumps([{"instruction": "x", "output_1": "a", "preference": 1}]).encode(),
     ["judge", "agreement", "--annotations", "{f}", "--reference", "{f}", "--out", "{out}"],
     ["item 0", "output_2"]),
    ("annotations-truncated", b'[{"instruction": "x", "output_1"',
     ["judge", "agreement", "--annotations", "{f}", "--reference", "{f}", "--out", "{out}"], ["invalid JSON"]),
    ("winrate-preference-out-of-range", json.dumps([{"instruction": "x", "preference": 3}]).encode(),
     ["evaluate", "winrate", "{f}"], ["preference"]),
    ("winrate-not-utf8", b'[{"instruction": "\xff"}]', ["evaluate", "winrate", "{f}"], ["not UTF-8"]),
    ("instances-wrong-kind", _jsonl([{"kind": "align_n", "prompt": "p", "response": "r"}]),
     ["train", "--config", "{config}", "--experiment", "e", "--base-model", "{model}", "--instances", "{f}",
      "--out", "{out}", "--objective", "kto", "--no-progress"], ["kind"]),
    ("instances-no-response", _jsonl([{"kind": "align_p", "prompt": "p", "source_index": 0}]),
     ["train", "--config", "{config}", "--experiment", "e", "--base-model", "{model}", "--instances", "{f}",
      "--out", "{out}", "--no-progress"], ["record 0", "'response'"]),
    ("heldout-items-bad-json", b"{not json}\n",
     ["evaluate", "heldout", "--model", "{model}", "--items", "{f}", "--out", "{out}"], ["line 1"]),
    ("split-records-bad-json", b"{\n",
     ["data", "split", "--records", "{f}", "--dataset", "shepherd", "--items", "1", "--train-out", "{out}",
      "--items-out", "{out}2"], ["line 1"]),
    ("draw-pool-row-a-string", b'"just text"\n',
     ["online", "draw", "--pool", "{f}", "--n", "1", "--label", "l", "--out", "{out}"], ["line 1"]),
    # third pass (issue 24): these said "unexpected KeyError" or went to the network first
    ("alpaca-eval-outputs-no-instruction", json.dumps([{"output": "x", "generator": "g"}]).encode(),
     ["evaluate", "alpaca-eval", "--model-outputs", "{f}", "--out", "{out}", "--cache", "{out}c", "--only-cached"],
     ["item 0", "instruction"]),
    ("alpaca-eval-outputs-empty-list", b"[]",
     ["evaluate", "alpaca-eval", "--model-outputs", "{f}", "--out", "{out}", "--cache", "{out}c"], ["non-empty"]),
    ("alpaca-eval-outputs-an-object", b'{"instruction": "x", "output": "y"}',
     ["evaluate", "alpaca-eval", "--model-outputs", "{f}", "--out", "{out}", "--cache", "{out}c"], ["JSON list"]),
    ("prompts-lone-surrogate", b'{"id": 1, "instruction": "Name \\ud800 colour."}\n',
     ["generate", "--model", "{model}", "--prompts", "{f}", "--out", "{out}", "--backend", "transformers",
      "--no-progress"], ["line 1", "lone surrogate"]),
    ("records-nested-too-deep", b"[" * 200_000 + b"]" * 200_000 + b"\n",
     ["data", "instances", "x", "--records", "{f}", "--out", "{out}"], ["line 1", "nested too deeply"]),
    ("annotations-nested-too-deep", b"[" * 200_000 + b"]" * 200_000, ["evaluate", "winrate", "{f}"],
     ["nested too deeply"]),
    ("rouge-predictions-no-output", _jsonl([{"id": 0, "instruction": "a"}]),
     ["evaluate", "rouge", "--predictions", "{f}", "--references", "{f}", "--out", "{out}"], ["line 1", "output"]),
]


@pytest.mark.parametrize("case", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_a_malformed_data_file_is_refused_naming_the_file(case, tmp_path, capsys, tiny_model_dir, monkeypatch):
    name, raw, argv, expected = case
    monkeypatch.setenv("OPENAI_API_KEY", "sk-reliability-test")
    (tmp_path / "in").mkdir()
    data = tmp_path / "in" / f"{name}.data"
    data.write_bytes(raw)
    config = tmp_path / "in" / "config.yaml"
    config.write_text(yaml.safe_dump(_set(BASE, "judges.j.base_url", "http://127.0.0.1:9/v1")))
    fill = {"{f}": str(data), "{config}": str(config), "{model}": str(tiny_model_dir),
            "{out}": str(tmp_path / "out" / "result")}
    args = [next((a.replace(k, v) for k, v in fill.items() if k in a), a) for a in argv]
    names_file = "{f}" in argv and argv[:2] != ["judge", "agreement"] or name.startswith("annotations")
    _refused(args, tmp_path, capsys, ([str(data)] if names_file else []) + expected)


# ------------------------------------------------------------------ missing things and bad arguments

def _missing_file_cases(tmp_path, tiny_model_dir, tiny_adapter_dir) -> list:
    """(argv, what the message names) for missing and damaged files, each written under tmp_path/in."""
    import shutil

    (tmp_path / "in").mkdir()
    gone = tmp_path / "in" / "nowhere.jsonl"
    prompts = tmp_path / "in" / "p.jsonl"
    prompts.write_text('{"id": 1, "instruction": "Name a colour."}\n')
    truncated = tmp_path / "in" / "adapter"
    shutil.copytree(tiny_adapter_dir, truncated)
    weights = truncated / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a copy cut short
    foreign = tmp_path / "in" / "foreign-adapter"  # trained on a model of another vocabulary
    shutil.copytree(tiny_adapter_dir, foreign)
    (foreign / "manifest.json").write_text(json.dumps({"base_signature": {"vocab_size": 32000}}))
    responses = tmp_path / "in" / "responses.jsonl"
    responses.write_text('{"instruction": "Name a colour.", "output": "Blue."}\n')
    damaged = tmp_path / "in" / "judgments.cache.jsonl"
    damaged.write_text('{"key": "a", "text": "Perfect."}\nnot json\n{"key": "b", "text": "Perfect."}\n')
    config = tmp_path / "in" / "config.yaml"
    config.write_text(yaml.safe_dump(_set(BASE, "judges.j.base_url", "http://127.0.0.1:9/v1")))
    keyless = tmp_path / "in" / "keyless.cache.jsonl"
    keyless.write_text('{"text": "Perfect."}\n')
    torn = tmp_path / "in" / "torn.jsonl"  # a generation's progress file with bytes that are not UTF-8
    torn.with_name("torn.jsonl.partial.jsonl").write_bytes(b'{"fingerprint": {}}\n{"id": 1, "output": "caf\xe9"}\n')
    finished = tmp_path / "in" / "finished.jsonl"  # a finished generation whose manifest was cut short
    finished.write_text('{"id": 1, "output": "Blue."}\n')
    finished.with_name("finished.jsonl.manifest.json").write_text('{"fingerprint": {"mod')
    cases = [
        (["generate", "--model", str(tmp_path / "in/no-model"), "--prompts", str(prompts), "--out",
          str(tmp_path / "out/g.jsonl"), "--backend", "transformers", "--no-progress"], "no-model"),
        (["generate", "--model", str(tiny_model_dir), "--adapter", str(truncated), "--prompts", str(prompts), "--out",
          str(tmp_path / "out/g.jsonl"), "--backend", "transformers", "--no-progress"],
         f"{truncated}: cannot load the LoRA adapter"),
        (["merge", "--base-model", str(tiny_model_dir), "--adapter", str(truncated), "--out",
          str(tmp_path / "out/merged")], f"{truncated}: cannot load the LoRA adapter"),
        (["judge", "--config", str(config), "--judge", "j", "--inputs", str(responses), "--out",
          str(tmp_path / "out/j"), "--cache", str(damaged)], f"{damaged}, line 2: not JSON"),
        (["judge", "--config", str(config), "--judge", "j", "--inputs", str(responses), "--out",
          str(tmp_path / "out/j"), "--cache", str(keyless)], f"{keyless}, line 1: a cache entry needs a 'key'"),
        (["data", "instances", "x", "--records", str(gone), "--out", str(tmp_path / "out/x")], "no such file"),
        (["judge", "agreement", "--annotations", str(gone), "--reference", str(gone), "--out",
          str(tmp_path / "out/x")], "no such file"),
        (["evaluate", "winrate", str(gone)], "no such file"),
        (["config", "check", str(gone)], "no such file"),
        (["report", "table", "table2", "--config", str(ROOT / "config/smoke.yaml"), "--runs",
          str(tmp_path / "in/runs-typo"), "--out", str(tmp_path / "out/t2.md")], "score files"),
        (["merge", "--base-model", str(tiny_model_dir), "--adapter", str(foreign), "--out",
          str(tmp_path / "out/merged")], f"{foreign}: trained on another base model (vocab_size 32000 there"),
        (["generate", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--out",
          str(tmp_path / "out/g.jsonl"), "--backend", "transformers", "--no-progress", "--max-new-tokens",
          str(10 ** 12)], "max_new_tokens 1,000,000,000,000 is beyond the model's context"),
        # a relative model folder that is not there is named, not looked up on the hub
        (["generate", "--model", "runs/nowhere/models/tiny", "--prompts", str(prompts), "--out",
          str(tmp_path / "out/g.jsonl"), "--backend", "transformers", "--no-progress"],
         "runs/nowhere/models/tiny: no such model folder"),
        (["generate", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--out", str(torn), "--backend",
          "transformers", "--no-progress"], f"{torn}.partial.jsonl: byte 44 is not UTF-8"),
        (["generate", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--out", str(finished), "--backend",
          "transformers", "--no-progress"], f"{finished}.manifest.json: not a generation manifest"),
    ]
    return cases


def test_missing_and_damaged_files_are_named(tmp_path, capsys, tiny_model_dir, tiny_adapter_dir):
    for argv, expected in _missing_file_cases(tmp_path, tiny_model_dir, tiny_adapter_dir):
        _refused(argv, tmp_path, capsys, [expected])


BAD_ARGUMENTS = [
    (["data", "instances", "shepherd", "--limit", "-5", "--out", "{out}"], "--limit"),
    (["data", "instances", "shepherd", "--limit", "-1", "--out", "{out}"], "--limit"),
    (["data", "instances", "shepherd", "--limit", "ten", "--out", "{out}"], "--limit"),
    (["data", "instances", "shepherd", "--downsample", "-1", "--out", "{out}"], "--downsample"),
    (["data", "instances", "shepherd", "--instructions", "0", "--out", "{out}"], "--instructions"),
    (["generate", "--model", "m", "--prompts", "alpaca_eval", "--out", "{out}", "--max-new-tokens", "0"],
     "--max-new-tokens"),
    (["generate", "--model", "m", "--prompts", "alpaca_eval", "--out", "{out}", "--temperature", "-1"],
     "--temperature"),
    (["generate", "--model", "m", "--prompts", "alpaca_eval", "--out", "{out}", "--top-p", "nan"], "--top-p"),
    (["generate", "--model", "m", "--prompts", "alpaca_eval", "--out", "{out}", "--top-p", "5"], "--top-p"),
    (["generate", "--model", "m", "--prompts", "alpaca_eval", "--out", "{out}", "--temperature", "inf"],
     "--temperature"),
    (["data", "instances", "shepherd", "--downsample", "inf", "--out", "{out}"], "--downsample"),
    (["generate", "--model", "m", "--prompts", "alpaca_eval", "--out", "{out}", "--limit", "0"], "--limit"),
    (["data", "split", "--records", "r", "--dataset", "d", "--items", "0", "--train-out", "{out}", "--items-out",
      "{out}"], "--items"),
    (["online", "draw", "--pool", "p", "--n", "-1", "--label", "l", "--out", "{out}"], "--n"),
    (["evaluate", "lm-eval", "--model", "m", "--data", "d", "--out", "{out}", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "blame", "--model", "m", "--items", "i", "--out", "{out}", "--threshold", "0"], "--threshold"),
    (["judge", "--config", "c", "--judge", "j", "--out", "{out}"], "--inputs"),
    (["judge", "agreement", "--out", "{out}", "--reference", "r"], "--annotations"),
    (["judge", "agreement", "--annotations", "a", "--out", "{out}"], "--reference"),
]


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=[f"{c[1]}-{i}" for i, c in enumerate(BAD_ARGUMENTS)])
def test_a_bad_argument_is_one_line_naming_it(case, tmp_path, capsys):
    argv, flag = case
    (tmp_path / "in").mkdir()
    _refused([a.replace("{out}", str(tmp_path / "out" / "x")) for a in argv], tmp_path, capsys, [flag])


def test_the_shell_sees_status_2_and_one_line(tmp_path):
    """As real processes: a bad config value and a bad number."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_set(BASE, "training.max_steps", -3)))
    for argv in (["config", "check", str(path)], ["data", "instances", "shepherd", "--limit", "-5", "--out",
                                                  str(tmp_path / "x.jsonl")]):
        done = subprocess.run([sys.executable, "-m", "repro.cli", *argv], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_the_count_in_the_docs_is_the_number_of_cases(tmp_path, tiny_model_dir, tiny_adapter_dir):
    missing = _missing_file_cases(tmp_path, tiny_model_dir, tiny_adapter_dir)
    total = len(CONFIG_CASES) + len(RAW_CONFIGS) + len(DATA_CASES) + len(missing) + len(BAD_ARGUMENTS)
    assert total >= 60
    assert f"{total} malformed inputs" in (ROOT / "docs/running.md").read_text()


# ------------------------------------------------------------------ the check every case goes through

def _refused(argv: list[str], tmp_path: Path, capsys, expected: list[str]) -> None:
    before = {p for p in tmp_path.rglob("*")}
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    captured = capsys.readouterr()
    err = captured.err
    assert code not in (0, None), f"accepted: {argv}\n{captured.out}"
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # (a model loader's progress bar
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err  # may precede it)
    assert "Traceback" not in err
    for text in expected:
        assert text in errors[0], (text, err)
    written = {p for p in tmp_path.rglob("*")} - before
    assert not written, sorted(map(str, written))


# ------------------------------------------------------------------ what is written, and when writing fails

def test_outputs_follow_the_umask(tmp_path):
    """Atomic writes used to leave every output 0600 (mkstemp's mode) whatever the umask."""
    import os
    import stat

    from repro.io import write_json, write_jsonl

    for mask, mode in ((0o002, 0o664), (0o022, 0o644), (0o077, 0o600)):
        old = os.umask(mask)
        try:
            write_json(tmp_path / f"{mask}.json", {})
            write_jsonl(tmp_path / f"{mask}.jsonl", [{}])
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / f"{mask}.json").stat().st_mode) == mode
        assert stat.S_IMODE((tmp_path / f"{mask}.jsonl").stat().st_mode) == mode


def test_model_weights_follow_the_umask(tmp_path):
    """safetensors writes weights 0600; a built model (and a trained adapter, a merge) get the umask's mode."""
    import os
    import stat

    from repro.models.tiny import build_tiny_model

    old = os.umask(0o022)
    try:
        folder = build_tiny_model(tmp_path / "tiny")
    finally:
        os.umask(old)
    assert stat.S_IMODE((folder / "model.safetensors").stat().st_mode) == 0o644


def test_training_on_a_full_disk_says_so_in_one_line(tmp_path, tiny_model_dir, store):
    """Training whose checkpoint cannot be written (here a file size limit, as a full disk would) reports the
    checkpoint it could not write, in one line, instead of torch's 'inline_container.cc: unexpected pos'."""
    import resource
    import signal

    from repro.data import prepare
    from repro.data.objectives import build_objective_instances
    from repro.io import write_jsonl

    records, _ = prepare("shepherd", store)
    instances, _ = build_objective_instances(records[:4], "cut")
    write_jsonl(tmp_path / "i.jsonl", instances)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_set(BASE, "training.save_steps", 1)))

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    done = subprocess.run([sys.executable, "-m", "repro.cli", "train", "--config", str(config), "--experiment", "e",
                           "--base-model", str(tiny_model_dir), "--instances", str(tmp_path / "i.jsonl"), "--out",
                           str(tmp_path / "run/adapter"), "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, preexec_fn=small_disk,
                          env={**__import__("os").environ, "PYTHONDONTWRITEBYTECODE": "1"})
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # (beside progress bars)
    assert done.returncode == 2 and len(errors) == 1 and done.stderr.rstrip().endswith(errors[0]), done.stderr
    assert "step-1.pt" in errors[0] and "could not write the checkpoint" in errors[0]
    assert "Traceback" not in done.stderr
