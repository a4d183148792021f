"""`repro preflight`: the paper config passes offline with the mirror; broken cases fail naming each problem."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.check.preflight import Preflight
from repro.cli import main

from helpers import MirrorServer, linked_mirror

ROOT = Path(__file__).resolve().parent.parent
SHA = "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347"


def test_paper_config_passes_offline_with_the_mirror(mirror):
    """The whole paper profile, as CI runs it: every check, the DAG included, and a table out."""
    result = subprocess.run([sys.executable, "-m", "repro.cli", "preflight", "--config", "config/paper.yaml",
                             "--offline"], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "REPRO_DATA_MIRROR": str(mirror)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    table = {line.split("|")[1].strip(): line.split("|")[2:5] for line in result.stdout.splitlines()
             if line.startswith("| ") and not line.startswith("| check")}
    assert list(table) == ["config", "data", "instances", "tokenize", "templates", "context", "lm-eval", "dag",
                           "memory", "plan"]
    assert all(problems.strip() == "0" for _, problems, _ in table.values())
    assert int(table["dag"][0]) > 500 and int(table["tokenize"][0]) >= 50
    out = result.stdout
    assert "data set summarization-train: file summarization/train.jsonl.gz" in out  # listed, not checked
    assert "cut-online-iter1: 1 over-long kept truncated" in out
    assert "llama2-chat-70b: generation" in out and "on 4 GPU(s)" in out
    assert out.rstrip().endswith("preflight passed")


def _config(tmp_path: Path, **extra) -> Path:
    data = {"profile": "broken", "device": "auto", "models": {
        "llama2": {"source": "hub", "path": "meta-llama/Llama-2-13b-chat-hf", "tokenizer": "llama-2-tokenizer",
                   "context": 4096}},
        "experiments": {"iter1-drop": {"base_model": "llama2", "dataset": "cut-iter1",
                                       "training": {"long_responses": "drop"}},
                        "iter2": {"base_model": "llama2", "dataset": "cut-iter2"}}}
    data.update(extra)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_broken_cases_exit_non_zero_naming_each(tmp_path, mirror, capsys, monkeypatch):
    """An over-long response under long_responses: drop, and a data file missing from the mirror whose
    download fails: both reported with experiment, file and record, exit non-zero."""
    fake = linked_mirror(mirror, tmp_path / "mirror", missing=("cut/iter/train-alpaca-sample-iter2.json",))
    monkeypatch.delenv("REPRO_DATA_MIRROR", raising=False)
    monkeypatch.setenv("REPRO_DATA_CACHE", str(tmp_path / "cache"))
    with MirrorServer(tmp_path / "empty") as server:  # serves nothing: every download is a 404
        monkeypatch.setenv("REPRO_DATA_BASE_URL", server.url)
        code = main(["preflight", "--config", str(_config(tmp_path)), "--mirror", str(fake), "--no-dag"])
    out = capsys.readouterr().out
    assert code == 1 and out.rstrip().endswith("PREFLIGHT FAILED")
    assert ("experiment iter1-drop: data set cut-iter1, instance" in out and "(source_index 888): the response alone "
            "fills cutoff_len 2048 and long_responses is 'drop'" in out)
    assert "data set cut-iter2: file " in out and "cut/iter/train-alpaca-sample-iter2.json" in out and "404" in out
    assert not (tmp_path / "cache/cut/iter/train-alpaca-sample-iter2.json").exists()


def test_a_corrupt_tokenizer_is_a_problem_naming_path_and_sha256(tmp_path, mirror, monkeypatch):
    fake = linked_mirror(mirror, tmp_path / "mirror", corrupted=("tokenizers/llama-2/tokenizer.model",))
    monkeypatch.delenv("REPRO_DATA_MIRROR", raising=False)
    from repro.data import DataStore

    checks = Preflight(_config(tmp_path), offline=True, store=DataStore(mirror=fake), dag=False).run()
    problems = {c.name: c.problems for c in checks}
    assert any(str(fake / "tokenizers/llama-2/tokenizer.model") in p and SHA in p for p in problems["data"])
    assert any("experiment iter2" in p and SHA in p for p in problems["tokenize"])


@pytest.mark.parametrize("tensor_parallel,fits", [(1, False), (4, True)])
def test_a_70b_model_must_generate_on_several_gpus(tmp_path, tensor_parallel, fits):
    config = _config(tmp_path, experiments={}, models={"llama2-70b": {
        "source": "hub", "path": "meta-llama/Llama-2-70b-chat-hf", "context": 4096,
        "tensor_parallel": tensor_parallel}}, data={"prepare": []})
    checks = {c.name: c for c in Preflight(config, offline=True, dag=False).run()}
    memory = checks["memory"].problems
    assert (memory == []) == fits
    if not fits:
        assert "model llama2-70b: a vLLM engine on 1 GPU(s)" in memory[0]
        assert "raise models.llama2-70b.tensor_parallel" in memory[0]


def test_an_unknown_gpu_and_an_invalid_config_are_problems(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: x\nmodels: {}\ntraining: {lr: 1}\n")
    checks = Preflight(bad, offline=True, dag=False).run()
    assert len(checks) == 1 and "training.lr: unknown key" in checks[0].problems[0]
    checks = Preflight(ROOT / "config/paper.yaml", gpu="TPU", offline=True, dag=False).run()
    assert "--gpu TPU: unknown GPU" in checks[0].problems[0]


def test_a_preflight_that_verified_nothing_fails(tmp_path, monkeypatch):
    """Run as the README once wrote it, without a mirror and offline, it said "passed" after verifying 0 files."""
    from repro.data import DataStore

    monkeypatch.delenv("REPRO_DATA_MIRROR", raising=False)
    checks = {c.name: c for c in Preflight(ROOT / "config/paper.yaml", offline=True,
                                             store=DataStore(cache=tmp_path / "empty"), dag=False).run()}
    assert checks["data"].items == 0 and any("verified nothing" in p and "no data mirror" in p
                                               for p in checks["data"].problems)
