"""Paid and slow work survives a crash at the worst moment (issue 24): a process killed while it repairs the torn
tail of a judgment cache or of a generation's progress file loses no complete entry; a training run owns its
output folder."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lines(n: int, make) -> bytes:
    return "".join(json.dumps(make(i)) + "\n" for i in range(n)).encode()


def _kill_during(path: Path, content: bytes, setup: str, call: str, window: tuple[float, float],
                 kills: int = 20) -> list[bytes]:
    """Kill `call` (which opens `path`, after `setup` imports what it needs) with SIGKILL at points spread over
    `window` (fractions of its undisturbed run time), each time on a fresh copy of `content`; return the file
    after each kill. The windows cover where the old repairs rewrote the whole file (the cache after parsing it,
    the progress file before), so several kills land inside those rewrites; the repair now never rewrites."""
    code = f"{setup}\nimport sys, time\nprint('ready', flush=True)\nt = time.perf_counter()\n{call}\n" \
           "print(time.perf_counter() - t, flush=True)"
    path.write_bytes(content)
    first = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True)
    duration = float(first.stdout.split()[-1])
    found = []
    for k in range(kills):
        path.write_bytes(content)
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(duration * (window[0] + (window[1] - window[0]) * k / kills))
        process.send_signal(signal.SIGKILL)
        process.wait()
        found.append(path.read_bytes())
    return found


def test_a_kill_while_the_judgment_cache_repairs_its_tail_loses_no_entry(tmp_path):
    valid = _lines(150_000, lambda i: {"key": f"k{i}", "judgment": "Perfect." * 3, "paid": True})
    torn = valid + b'{"key": "k-torn", "judgm'
    cache = tmp_path / "judgments.jsonl"
    for after in _kill_during(cache, torn, "from repro.judge.cache import JudgmentCache",
                              f"JudgmentCache({str(cache)!r})", window=(0.75, 1.0), kills=40):
        assert after.startswith(valid), "a complete entry was lost"
        assert after in (valid, torn)
    from repro.judge.cache import JudgmentCache

    assert len(JudgmentCache(cache).entries) == 150_000 and cache.read_bytes() == valid


def test_a_kill_while_a_generation_repairs_its_progress_file_loses_no_row(tmp_path):
    fingerprint = {"model": "m"}
    valid = (json.dumps({"fingerprint": fingerprint}) + "\n").encode() + _lines(
        150_000, lambda i: {"id": i, "output": "an answer " * 5})
    torn = valid + b'{"id": 150000, "outp'
    progress = tmp_path / "out.partial.jsonl"
    for after in _kill_during(progress, torn, "from pathlib import Path\nfrom repro.generate.run import read_partial",
                              f"read_partial(Path({str(progress)!r}), {fingerprint!r})", window=(0.0, 0.1)):
        assert after.startswith(valid) and after in (valid, torn)
    from repro.generate.run import read_partial

    assert len(read_partial(progress, fingerprint)) == 150_000


def test_a_cache_line_without_a_key_is_named(tmp_path):
    from repro.judge.cache import JudgmentCache

    cache = tmp_path / "c.jsonl"
    cache.write_text('{"key": "a"}\n{"judgment": "x"}\n')
    with pytest.raises(ValueError, match=r"c.jsonl, line 2: a cache entry needs a 'key'"):
        JudgmentCache(cache)
    assert cache.read_text() == '{"key": "a"}\n{"judgment": "x"}\n'  # nothing rewritten


@pytest.fixture()
def small_run(tmp_path, tiny_model_dir, store):
    from repro.data import prepare
    from repro.data.objectives import build_objective_instances
    from repro.io import write_jsonl

    records = prepare("shepherd", store)[0][:8]
    instances, _ = build_objective_instances(records, "cut", downsample=0.25, seed=0)
    write_jsonl(tmp_path / "instances.jsonl", instances)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "profile": "t", "device": "cpu", "models": {"tiny": {"source": "tiny", "path": str(tiny_model_dir)}},
        "training": {"batch_size": 4, "micro_batch_size": 2, "max_steps": 2, "warmup_steps": 0,
                     "precision": "fp32", "save_steps": 1},
        "experiments": {"e": {"base_model": "tiny", "dataset": "shepherd"}}}))
    return ["train", "--config", str(config), "--experiment", "e", "--base-model", str(tiny_model_dir),
            "--instances", str(tmp_path / "instances.jsonl")]


def test_a_fresh_training_refuses_a_folder_with_another_runs_checkpoints(tmp_path, small_run, capsys):
    from repro.cli import main

    out = tmp_path / "adapter"
    stale = out.parent / "checkpoints"
    stale.mkdir(parents=True)
    for step in (7, 8):
        (stale / f"step-{step}.pt").write_bytes(b"an older run's checkpoint")
    code = main(small_run + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoints" in err and "--resume" in err, err
    assert sorted(p.name for p in stale.iterdir()) == ["step-7.pt", "step-8.pt"]  # nothing deleted


def test_two_trainings_on_one_output_the_second_stops_at_once(tmp_path, small_run):
    out = tmp_path / "adapter"
    argv = [sys.executable, "-m", "repro.cli", *small_run, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not Path(str(out) + ".lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    first_err = first.communicate(timeout=300)[1]
    assert second.returncode != 0 and "another training is writing it now" in second.stderr, second.stderr
    assert first.returncode == 0, first_err[-2000:]
    assert (out / "adapter_model.safetensors").is_file()


def test_a_garbage_log_line_and_a_stray_checkpoint_name_are_handled(tmp_path, small_run, capsys):
    """A `step-final.pt` someone left among the checkpoints used to crash the resume (int('final')); a log line
    that is not JSON used to be an unexpected JSONDecodeError."""
    from repro.cli import main

    out = tmp_path / "adapter"
    assert main(small_run + ["--out", str(out)]) == 0
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "step-final.pt").write_bytes(b"not ours")
    log = tmp_path / "train_log.jsonl"
    import shutil

    shutil.rmtree(out)  # the workflow removes an output before it reruns the job
    assert main(small_run + ["--out", str(out), "--resume"]) == 0  # resumes from step-2.pt, finished
    log.write_text(log.read_text() + "garbage\n")
    shutil.rmtree(out)
    code = main(small_run + ["--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and f"{log}, line 3: not a training log line" in err, err


def test_progress_bars_show_on_a_terminal_and_stay_out_of_logs_and_ci(monkeypatch):
    """Judging, held-out scoring and downloads draw a bar on a terminal; under CI, or with stderr in a log file (as
    every workflow job has it), the bar is silent."""
    import io

    from repro.io import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stderr", Terminal())
    with progress(3, "judging", unit="call") as bar:
        bar.update(3)
    assert "judging" in sys.stderr.getvalue() and "3/3" in sys.stderr.getvalue()
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr("sys.stderr", Terminal())
    with progress(3, "judging") as bar:
        bar.update(3)
    assert sys.stderr.getvalue() == ""
    monkeypatch.delenv("CI")
    monkeypatch.setattr("sys.stderr", io.StringIO())  # a file, not a terminal
    with progress(3, "judging") as bar:
        bar.update(3)
    assert sys.stderr.getvalue() == ""
