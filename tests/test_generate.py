"""Generation: both backends, with and without an unmerged adapter, batching, kill-and-resume, stale outputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro.generate.run import StaleOutputError, run_generation
from repro.generate.spec import Decoding, GenerationSpec

ROOT = Path(__file__).resolve().parent.parent


def _spec(model, **kw) -> GenerationSpec:
    kw.setdefault("decoding", Decoding(max_new_tokens=20))
    return GenerationSpec(model=str(model), generator="tiny", **kw)


def _outputs(path) -> list[str]:
    return [r["output"] for r in json.loads(Path(path).read_text())]


@pytest.fixture(scope="module")
def transformers_outputs(tiny_model_dir, tiny_adapter_dir, store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    out = {}
    for name, adapter in (("base", None), ("adapter", str(tiny_adapter_dir))):
        run_generation(_spec(tiny_model_dir, adapter=adapter, batch_size=8), "alpaca_eval", folder / f"{name}.json",
                       limit=10, store=store, progress=False)
        out[name] = _outputs(folder / f"{name}.json")
    return out


def test_alpaca_eval_format_and_manifest(tiny_model_dir, store, tmp_path):
    out = tmp_path / "alpaca_eval.json"
    manifest = run_generation(_spec(tiny_model_dir), "alpaca_eval", out, limit=3, store=store, progress=False)
    rows = json.loads(out.read_text())
    reference = json.loads((store.mirror / "alpaca_eval/alpaca_eval.json").read_text())[:3]
    assert [set(r) for r in rows] == [{"instruction", "output", "generator", "dataset"}] * 3
    assert [r["instruction"] for r in rows] == [r["instruction"] for r in reference]
    assert [r["dataset"] for r in rows] == [r["dataset"] for r in reference]
    assert {r["generator"] for r in rows} == {"tiny"}
    assert manifest["fingerprint"]["decoding"] == {"max_new_tokens": 20, "temperature": 0.0, "top_p": 1.0, "seed": 0}
    assert not Path(str(out) + ".partial.jsonl").exists()


def test_adapter_is_applied_unmerged(transformers_outputs):
    assert transformers_outputs["base"] != transformers_outputs["adapter"]


def test_batched_generation_equals_one_prompt_at_a_time(tiny_model_dir, transformers_outputs, store, tmp_path):
    out = tmp_path / "single.json"
    run_generation(_spec(tiny_model_dir, batch_size=1), "alpaca_eval", out, limit=10, store=store, progress=False)
    assert _outputs(out) == transformers_outputs["base"]


def test_jsonl_prompts_keep_their_ids(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "instruction": f"Say {i}.", "input": "ctx" if i else ""})
                               + "\n" for i in range(3)))
    out = tmp_path / "gen.jsonl"
    run_generation(_spec(tiny_model_dir), str(prompts), out, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q0", "q1", "q2"] and rows[1]["input"] == "ctx"


def test_outputs_from_other_settings_are_never_reused(tiny_model_dir, store, tmp_path):
    out = tmp_path / "gen.json"
    run_generation(_spec(tiny_model_dir), "alpaca_eval", out, limit=2, store=store, progress=False)
    again = run_generation(_spec(tiny_model_dir), "alpaca_eval", out, limit=2, store=store, progress=False)
    assert again["generated_now"] == 0 or again["prompts"] == 2  # same settings: nothing to do
    with pytest.raises(StaleOutputError, match="exists from another generation"):
        run_generation(_spec(tiny_model_dir, decoding=Decoding(max_new_tokens=21)), "alpaca_eval", out, limit=2,
                       store=store, progress=False)
    partial = tmp_path / "other.json.partial.jsonl"
    partial.write_text(json.dumps({"fingerprint": {"model": "someone-else"}}) + "\n")
    with pytest.raises(StaleOutputError, match="other settings"):
        run_generation(_spec(tiny_model_dir), "alpaca_eval", tmp_path / "other.json", limit=2, store=store,
                       progress=False)


def test_kill_and_resume_gives_every_prompt_once_and_the_same_content(tiny_model_dir, store, tmp_path):
    env = {**os.environ, "REPRO_DATA_MIRROR": str(store.mirror)}
    common = ["--model", str(tiny_model_dir), "--prompts", "alpaca_eval", "--limit", "40", "--max-new-tokens", "64",
              "--batch-size", "1", "--generator", "tiny", "--no-progress", "--backend", "transformers"]

    def command(out):
        return [sys.executable, "-m", "repro.cli", "generate", *common, "--out", str(out)]

    subprocess.run(command(tmp_path / "straight.json"), check=True, capture_output=True, env=env, cwd=ROOT)
    out = tmp_path / "killed.json"
    partial = tmp_path / "killed.json.partial.jsonl"
    victim = subprocess.Popen(command(out), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and victim.poll() is None:
        if partial.exists() and partial.read_text().count("\n") >= 6:
            break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not out.exists(), "the run finished before it could be killed"
    finished_before = partial.read_text().count("\n") - 1
    resumed = subprocess.run(command(out), check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["reused_from_partial"] == finished_before and summary["generated_now"] == 40 - finished_before
    assert out.read_text() == (tmp_path / "straight.json").read_text()
    assert len(json.loads(out.read_text())) == 40


def test_half_written_last_line_is_redone(tiny_model_dir, store, tmp_path):
    out = tmp_path / "gen.json"
    run_generation(_spec(tiny_model_dir), "alpaca_eval", tmp_path / "ref.json", limit=3, store=store, progress=False)
    spec = _spec(tiny_model_dir)
    partial = tmp_path / "gen.json.partial.jsonl"
    reference = json.loads((tmp_path / "ref.json").read_text())
    partial.write_text(json.dumps({"fingerprint": spec.fingerprint("alpaca_eval")}) + "\n"
                       + json.dumps({"id": 0, "output": reference[0]["output"], "new_tokens": 1}) + "\n"
                       + '{"id": 1, "outp')
    manifest = run_generation(spec, "alpaca_eval", out, limit=3, store=store, progress=False)
    assert (manifest["reused_from_partial"], manifest["generated_now"]) == (1, 2)
    assert _outputs(out) == [r["output"] for r in reference]


def test_unknown_prompt_set_is_a_clear_error(tiny_model_dir, tmp_path):
    from repro.data import DataError

    with pytest.raises(DataError, match="unknown prompt set 'alpacaeval'"):
        run_generation(_spec(tiny_model_dir), "alpacaeval", tmp_path / "x.json", progress=False)


@pytest.mark.slow
def test_vllm_matches_transformers_greedy_with_and_without_adapter(tiny_model_dir, tiny_adapter_dir, store,
                                                                   transformers_outputs, tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in this process: no spawn under pytest
    for name, adapter in (("base", None), ("adapter", str(tiny_adapter_dir))):
        out = tmp_path / f"{name}.json"
        manifest = run_generation(_spec(tiny_model_dir, adapter=adapter, backend="vllm"), "alpaca_eval", out,
                                  limit=10, store=store, progress=False)
        assert manifest["fingerprint"]["backend"] == "vllm"
        assert _outputs(out) == transformers_outputs[name]


@pytest.mark.slow
def test_smollm2_answers_real_alpaca_eval_instructions(smollm2_dir, store, tmp_path):
    out = tmp_path / "smollm2.json"
    run_generation(GenerationSpec(model=str(smollm2_dir), generator="smollm2", decoding=Decoding(max_new_tokens=40)),
                   "alpaca_eval", out, limit=3, store=store, progress=False)
    rows = json.loads(out.read_text())
    for row in rows:
        print(repr(row["instruction"][:60]), "->", repr(row["output"][:120]))
        words = row["output"].split()
        assert len(words) >= 5 and "###" not in row["output"]
        assert sum(w.isalpha() for w in words) / len(words) > 0.5  # real words, not token soup


# ------------------------------------------------------------------ resume traps, locks, limits (hardening)

def test_an_output_cut_short_before_its_manifest_is_finished_on_rerun(tiny_model_dir, store, tmp_path):
    """A full disk between the output and its manifest leaves the output, no manifest, and the progress file:
    the rerun rebuilds both from the progress file (before: refused as 'from another generation')."""
    spec = _spec(tiny_model_dir)
    run_generation(spec, "alpaca_eval", tmp_path / "ref.json", limit=3, store=store, progress=False)
    reference = json.loads((tmp_path / "ref.json").read_text())
    out = tmp_path / "gen.json"
    (tmp_path / "gen.json.partial.jsonl").write_text(
        json.dumps({"fingerprint": spec.fingerprint("alpaca_eval")}) + "\n"
        + "".join(json.dumps({"id": i, "output": r["output"], "new_tokens": 1}) + "\n"
                  for i, r in enumerate(reference)))
    out.write_text('[{"instruction": "half wri')  # the final write that did not finish
    manifest = run_generation(spec, "alpaca_eval", out, limit=3, store=store, progress=False)
    assert (manifest["reused_from_partial"], manifest["generated_now"]) == (3, 0)
    assert _outputs(out) == [r["output"] for r in reference] and not (tmp_path / "gen.json.partial.jsonl").exists()


def test_two_headers_in_the_progress_file_resume(tiny_model_dir, store, tmp_path):
    """Two fresh starts can each write a header line: resuming reads past both (before: KeyError)."""
    spec = _spec(tiny_model_dir)
    header = json.dumps({"fingerprint": spec.fingerprint("alpaca_eval")}) + "\n"
    (tmp_path / "gen.json.partial.jsonl").write_text(header + header)
    manifest = run_generation(spec, "alpaca_eval", tmp_path / "gen.json", limit=2, store=store, progress=False)
    assert manifest["generated_now"] == 2 and len(_outputs(tmp_path / "gen.json")) == 2


def test_a_second_generation_on_the_same_output_is_refused_while_the_first_runs(tiny_model_dir, store, tmp_path):
    from repro.io import Busy, exclusive

    out = tmp_path / "gen.json"
    with exclusive(out, "generation"):  # what a running `repro generate` holds
        with pytest.raises(Busy, match="another generation is writing it now"):
            run_generation(_spec(tiny_model_dir), "alpaca_eval", out, limit=2, store=store, progress=False)
    assert not out.exists()
    run_generation(_spec(tiny_model_dir), "alpaca_eval", out, limit=2, store=store, progress=False)  # free again


def test_a_prompt_beyond_the_context_is_refused_by_item(tiny_model_dir, tmp_path):
    """A 5 MB prompt is refused before it is tokenised (before: the process grew to 23 GB); one just over the
    context after tokenising; the message names the item. Nothing is written."""
    context = json.loads((Path(tiny_model_dir) / "config.json").read_text())["max_position_embeddings"]
    prompts = tmp_path / "p.jsonl"
    for item, text in ((7, "x" * 5_000_000), (8, "word " * context)):
        prompts.write_text(json.dumps({"id": 0, "instruction": "fine"}) + "\n"
                           + json.dumps({"id": item, "instruction": text}) + "\n")
        started = time.time()
        with pytest.raises(ValueError, match=f"prompt {item}: .*context of {context} tokens"):
            run_generation(_spec(tiny_model_dir), str(prompts), tmp_path / "out.jsonl", progress=False)
        assert time.time() - started < 30 and not (tmp_path / "out.jsonl").exists()


def test_an_empty_prompt_file_is_an_error(tiny_model_dir, tmp_path):
    (tmp_path / "p.jsonl").write_text("")
    with pytest.raises(ValueError, match="no prompts"):
        run_generation(_spec(tiny_model_dir), str(tmp_path / "p.jsonl"), tmp_path / "out.jsonl", progress=False)
