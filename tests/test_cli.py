"""The command-line contract other work relies on, run as a user runs it (real subprocesses)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def repro(*args, env_mirror, check=True):
    import os

    env = {**os.environ, "REPRO_DATA_MIRROR": str(env_mirror)}
    return subprocess.run([sys.executable, "-m", "repro.cli", *args], capture_output=True, text=True, env=env,
                          check=check, cwd=ROOT)


def test_prepare_writes_records_and_provenance(tmp_path, mirror):
    out = tmp_path / "shepherd.jsonl"
    done = repro("data", "prepare", "shepherd", "--out", str(out), env_mirror=mirror)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1317
    assert json.loads(done.stdout)["rows"] == 1317  # the summary on stdout, as every command prints its own
    assert {"instruction", "input", "output", "judgment", "source_index"} <= set(rows[0])
    meta = json.loads((tmp_path / "shepherd.meta.json").read_text())
    assert meta["stats"]["read"] == 1317
    assert {f["sha256"] for f in meta["files"]} == {
        "bececda0fab23bf2faf11c9830323a30aa34d4aafbf5067996d34c7e1905ff8a",
        "d3c37ca0aa2cee25c754dc789620cec603e9569cc3acae7626919085cdc98217"}


def test_instances_contract(tmp_path, mirror):
    out = tmp_path / "iter1.jsonl"
    done = repro("data", "instances", "cut-iter1", "--downsample", "0.25", "--seed", "42", "--out", str(out),
                 env_mirror=mirror)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert isinstance(json.loads(done.stdout), dict) and done.stderr == ""
    assert len(rows) == 358
    assert {r["kind"] for r in rows} == {"align_p", "align_n"}
    for r in rows:
        assert {"kind", "source_index", "prompt", "response"} <= set(r)
        assert ("misalign_prompt" in r) == (r["kind"] == "align_n")


def test_instances_from_prepared_records_equal_instances_from_the_name(tmp_path, mirror):
    records = tmp_path / "iter2.jsonl"
    repro("data", "prepare", "cut-iter2", "--out", str(records), env_mirror=mirror)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    repro("data", "instances", "cut-iter2", "--downsample", "0.25", "--out", str(a), env_mirror=mirror)
    repro("data", "instances", "cut-iter2", "--records", str(records), "--downsample", "0.25", "--out", str(b),
          env_mirror=mirror)
    assert a.read_text() == b.read_text() and len(a.read_text().splitlines()) == 288


def test_unknown_name_is_a_clear_error_and_writes_nothing(tmp_path, mirror):
    out = tmp_path / "x.jsonl"
    result = repro("data", "prepare", "shepard", "--out", str(out), env_mirror=mirror, check=False)
    assert result.returncode == 2
    assert "unknown data set 'shepard'" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_tiny_model_cli_builds_a_loadable_llama(tmp_path, mirror):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repro("model", "build", "tiny", str(tmp_path / "tiny"), env_mirror=mirror)
    tok = AutoTokenizer.from_pretrained(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny")
    cfg = model.config
    assert (cfg.model_type, cfg.head_dim, cfg.vocab_size) == ("llama", 64, len(tok))
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 0)
    ids = tok("### Response:\nThe sky is blue.").input_ids
    assert ids[0] == 1 and tok.decode(ids, skip_special_tokens=True) == "### Response:\nThe sky is blue."
    logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tok)) and torch.isfinite(logits).all()


def test_tiny_model_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    from repro.models.tiny import build_tiny_model

    a = load_file(build_tiny_model(tmp_path / "a") / "model.safetensors")
    b = load_file(build_tiny_model(tmp_path / "b") / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a/tokenizer.json").read_text() == (tmp_path / "b/tokenizer.json").read_text()


def test_version(capsys):
    from importlib.metadata import version

    from repro.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"repro {version('repro')}"


def test_stop_ends_only_the_jobs_of_the_named_run_folder(tmp_path):
    """After a hard-killed workflow: `repro stop --runs runs/smoke` ends the repro jobs naming runs/smoke that
    run in the project, and leaves another profile's job and a job of another project running (the recipe
    it replaces, `pkill -f "repro "`, ended all three and any other process with "repro " in its command)."""
    import os

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()

    def job(cwd, runs):  # a process whose command line is a repro job's
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "repro.cli", "train",
                                 "--out", f"{runs}/experiments/x/adapter"], cwd=cwd)

    ours, other_profile, other_project = job(project, "runs/smoke"), job(project, "runs/small"), job(elsewhere,
                                                                                                      "runs/smoke")
    try:
        time.sleep(0.5)
        listed = subprocess.run([sys.executable, "-m", "repro.cli", "stop", "--runs", "runs/smoke", "--project",
                                 str(project), "--dry-run"], capture_output=True, text=True, check=True)
        assert listed.stdout.startswith(f"{ours.pid} ") and "1 jobs of runs/smoke" in listed.stdout
        done = subprocess.run([sys.executable, "-m", "repro.cli", "stop", "--runs", "runs/smoke", "--project",
                               str(project), "--grace", "5"], capture_output=True, text=True, check=True)
        assert "stopped 1 jobs" in done.stdout
        assert ours.wait(timeout=10) == -15  # SIGTERM
        assert other_profile.poll() is None and other_project.poll() is None
    finally:
        for process in (ours, other_profile, other_project):
            if process.poll() is None:
                os.kill(process.pid, 9)
                process.wait()
