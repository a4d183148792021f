"""The Snakemake workflow: a dry run for every shipped config, lint, and the smoke profile for real."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run(args, cwd=ROOT, env=None):
    return subprocess.run(SNAKEMAKE + args, cwd=cwd, capture_output=True, text=True, env=env)


@pytest.mark.parametrize("config", ["paper", "smoke", "mini"])
def test_dry_run_for_every_config(config, tmp_path):
    result = run(["-n", "--configfile", f"config/{config}.yaml", "--directory", str(tmp_path),
                  "--snakefile", str(ROOT / "Snakefile")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "build_instances" in result.stdout + result.stderr


def test_default_config_is_the_paper(tmp_path):
    result = run(["-n", "--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile")])
    assert result.returncode == 0, result.stderr[-3000:]
    plan = result.stdout + result.stderr
    assert "runs/paper/experiments/cut-online-iter5/instances.jsonl" in plan
    assert "runs/paper/scores/cut-summarization-llama2-13b/rouge.json" in plan  # Table 3 path
    assert "runs/paper/scores/base-llama2-chat-13b/lm_eval.json" in plan
    assert "runs/paper/experiments/cut-online-iter4/merged" in plan  # online chain


def test_lint_is_clean():
    result = run(["--lint"])
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout[-3000:]


def test_smoke_profile_runs_and_a_second_run_does_nothing(tmp_path, mirror):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "config", work / "config")
    env = {**os.environ, "REPRO_DATA_MIRROR": str(mirror)}
    args = ["--cores", "2", "--configfile", "config/smoke.yaml", "--snakefile", str(ROOT / "Snakefile"),
            "--directory", str(work)]
    first = run(args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    runs = work / "runs" / "smoke"
    assert (runs / "data/shepherd.jsonl").read_text().count("\n") == 16
    assert (runs / "data/mmlu-test.jsonl").read_text().count("\n") == 14042  # evaluation sets stay whole
    assert (runs / "experiments/cut-online-iter1-tiny/instances.jsonl").is_file()
    assert (runs / "models/tiny/model.safetensors").is_file()
    assert (runs / "experiments/cut-online-iter1-tiny/merged/model.safetensors").is_file()  # online chain merged
    generations = json.loads((runs / "generations/cut-online-iter2-tiny/alpaca_eval.json").read_text())
    assert len(generations) == 4 and {g["generator"] for g in generations} == {"cut-online-iter2-tiny"}
    for name in ("base-tiny", "cut-shepherd-tiny", "cut-online-iter1-tiny", "cut-online-iter2-tiny"):
        alpaca = json.loads((runs / f"scores/{name}/alpaca_eval.json").read_text())
        assert (alpaca["n"], alpaca["local_judge"], alpaca["comparable_with_paper"]) == (4, True, False)
        lm = json.loads((runs / f"scores/{name}/lm_eval.json").read_text())
        assert set(lm["scores"]) == {"arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "avg"}
    assert list((runs / "benchmarks").rglob("*.tsv")) and list((runs / "logs").rglob("*.log"))
    second = run(args, env=env)
    assert second.returncode == 0 and "Nothing to be done" in second.stdout + second.stderr
