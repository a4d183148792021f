"""The prepared GPU scripts run end to end in their tiny CPU presets, so they cannot rot between GPU sessions.
(Speed is measured by the scripts under benchmarks/, never asserted here.)"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_cut_step_script_runs_on_cpu_tiny_preset():
    result = subprocess.run([sys.executable, "benchmarks/gpu_cut_step.py", "--preset", "tiny", "--device", "cpu",
                             "--steps", "1", "--warmup", "0", "--tokens", "128"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(r["mode"], r["loss_path"]) for r in rows] == [("lora", "logits"), ("lora", "hidden"), ("full", "logits"),
                                                           ("full", "hidden")]
    lora, _, full, _ = rows
    assert 0 < lora["trainable"] < full["trainable"] == full["params"]
    assert all(r["tokens_per_s"] > 0 and r["loss"] > 0 for r in rows)
    for logits, hidden in (rows[:2], rows[2:]):  # one step from the same weights: the same loss either way
        assert abs(logits["loss"] - hidden["loss"]) < 1e-4 * logits["loss"]


def test_gpu_loss_check_script_runs_on_cpu_small_shapes():
    result = subprocess.run([sys.executable, "benchmarks/gpu_check_loss.py", "--device", "cpu", "--small"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {(r["check"], r.get("dtype"), r.get("path"), r.get("finetune")) for r in rows} == {
        ("loss", d, p, None) for d in ("float32", "bfloat16") for p in ("logits", "hidden")} | {
        ("training_step", None, None, f) for f in ("lora", "full")}
    assert all(r["ok"] for r in rows)


def test_smollm2_training_benchmark_runs_and_both_variants_train_alike(smollm2_dir, mirror):
    result = subprocess.run([sys.executable, "benchmarks/bench_smollm2_train.py", "--model", str(smollm2_dir),
                             "--mirror", str(mirror), "--steps", "1", "--batch", "2"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    gap = float(result.stdout.split("largest relative loss difference ")[1].split(",")[0])
    assert gap < 1e-5, result.stdout  # the first step's loss, from the same weights on both paths


def test_gpu_paper_step_script_runs_on_cpu_and_writes_a_calibration_file(tmp_path):
    """The paper-shape measurement (issue 22) in its CPU preset: every phase runs (8-bit needs CUDA and says so),
    and the calibration file it writes loads, its new figures measured."""
    import os

    from repro import calibration

    result = subprocess.run([sys.executable, "benchmarks/gpu_paper_step.py", "--preset", "tiny", "--device", "cpu",
                             "--steps", "1", "--scale", "0.1", "--as-gpu", "H200"],
                            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OUT": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"')]  # TRL prints dicts too
    steps = [(r["objective"], r["checkpointing"]) for r in rows if r.get("phase") == "step"]
    assert steps == [("cut", False), ("likelihood", False), ("cut", True), ("likelihood", True)]
    by_phase = {r.get("phase"): r for r in rows}
    assert by_phase["8bit"] == {"phase": "8bit", "skipped": "needs CUDA"}
    assert by_phase["sft"]["tokens_per_s"] > 0 and by_phase["decode"]["tokens_per_s"] > 0
    cut, plain = (r for r in rows if r.get("phase") == "step" and not r["checkpointing"])
    assert cut["tokens_per_step"] > plain["tokens_per_step"]  # the Misalign rows on top of the same rows
    written = calibration.load("H200", tmp_path)
    for key in ("train_lora", "train_lora_checkpointing", "score", "decode"):
        assert written.phases[key].measured and "gpu_paper_step.py" in written.phases[key].source, key
    assert written.train_mfu("lora", True, False).measured  # the paper step is now a measurement of its own
