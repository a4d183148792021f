"""The training recipe on the tiny model: exact gradient semantics across batch splits and processes, resume after
a kill, bad input, and merge."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from repro.config import Training
from repro.cut.collate import collate, encode_instance, encode_instances
from repro.cut.loss import cut_loss
from repro.cut.train import TrainJob, TrainRun, load_model, train, train_step
from repro.data import build_instances, prepare
from repro.io import write_jsonl

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def instances_file(tmp_path_factory, store):
    """12 real examples from online iteration 1 (negatives and positives), short enough for quick steps."""
    rows, _ = prepare("cut-iter1", store)
    short = [r for r in rows if len(r["output"]) < 500]
    picked = [r for r in short if r["judgment"]][:6] + [r for r in short if r["judgment"] is None][:6]
    instances, _ = build_instances(picked)
    path = tmp_path_factory.mktemp("inst") / "instances.jsonl"
    write_jsonl(path, instances)
    return path


def _training(**overrides) -> Training:
    base = dict(batch_size=8, micro_batch_size=1, max_steps=1, warmup_steps=0, lr_scheduler="constant",
                learning_rate=1e-2, precision="fp32", save_steps=1000,
                lora={"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["gate_proj", "down_proj", "up_proj"]})
    base.update(overrides)
    return Training.model_validate(base)


def _run(tmp_path, tiny_model_dir, instances_file, name, **overrides) -> dict[str, torch.Tensor]:
    out = tmp_path / name / "adapter"
    train(TrainJob(str(tiny_model_dir), instances_file, out, _training(**overrides), device="cpu", progress=False))
    return load_file(out / "adapter_model.safetensors")


# After one Adam step from lora_B = 0 every element has moved by about lr (1e-2), but an element whose gradient is
# near Adam's eps (1e-8) moves by an amount that depends on the last bits of the gradient's summation order (seen:
# up to 3e-6). Runs that must agree are compared to ADAM_ATOL = 0.1% of a step; a wrong split or scale differs by
# about a whole step.
ADAM_ATOL = 1e-5


def _assert_same(a: dict, b: dict, rtol=1e-6, atol=1e-7):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol, msg=key)


def test_one_step_is_the_same_for_every_micro_batch_split(tmp_path, tiny_model_dir, instances_file):
    """micro-batch 1 x accumulation 8, 8 x 1 and 4 x 2 give the same parameters (fp32)."""
    ref = _run(tmp_path, tiny_model_dir, instances_file, "m1", micro_batch_size=1)
    _assert_same(ref, _run(tmp_path, tiny_model_dir, instances_file, "m8", micro_batch_size=8), atol=ADAM_ATOL)
    _assert_same(ref, _run(tmp_path, tiny_model_dir, instances_file, "m4", micro_batch_size=4), atol=ADAM_ATOL)
    # and the step really moved the weights (lora_B starts at zero)
    assert any(v.abs().max() > 0 for k, v in ref.items() if "lora_B" in k)


def test_accumulated_gradient_is_the_mean_of_per_example_losses(tiny_model_dir, instances_file):
    """Adam hides a wrong gradient scale, so check the gradient itself, with SGD, against an independent
    computation: the mean over the 8 examples of each example's loss computed alone."""
    from transformers import AutoTokenizer

    from repro.cut.train import global_batch, plan_steps

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = encode_instances(tokenizer, [json.loads(x) for x in open(instances_file)], 2048).examples
    training = _training(micro_batch_size=2, max_grad_norm=None)
    steps_per_epoch, _ = plan_steps(len(examples), training)
    indices = global_batch(0, len(examples), training, steps_per_epoch)

    torch.manual_seed(0)
    model = load_model(str(tiny_model_dir), training, torch.device("cpu"))
    params = [p for p in model.parameters() if p.requires_grad]
    reference = [torch.zeros_like(p) for p in params]
    for i in indices:
        batch = collate([examples[i]], 0)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        out = cut_loss(logits[:1], batch.targets, logits[1:], batch.misalign_targets, batch.negative,
                       threshold=1.1, alpha=1.0)
        grads = torch.autograd.grad(out.loss / len(indices), params, allow_unused=True)
        reference = [r + (g if g is not None else 0) for r, g in zip(reference, grads)]

    before = [p.detach().clone() for p in params]
    sgd = torch.optim.SGD(params, lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(sgd, lambda _: 1.0)
    record = train_step(TrainRun(model, params, sgd, scheduler, training, torch.device("cpu")), examples, indices)
    for b, p, r in zip(before, params, reference):
        torch.testing.assert_close(b - p.detach(), r, rtol=1e-5, atol=1e-8)
    assert record["examples"] == 8 and 0 <= record["flagged_rate"] <= 1


def test_two_processes_equal_one(tmp_path, tiny_model_dir, instances_file):
    """torchrun with 2 CPU processes (gloo), micro-batch 2 x accumulation 2 each, equals 1 process with 8 x 1:
    same weights after 2 steps and the same logged loss and gradient norm (which Adam alone would hide)."""
    config = tmp_path / "cfg.yaml"
    training = {"batch_size": 8, "micro_batch_size": 2, "max_steps": 2, "warmup_steps": 0, "precision": "fp32",
                "learning_rate": 1.0e-2, "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                                                  "targets": ["gate_proj", "down_proj", "up_proj"]}}
    config.write_text(yaml.safe_dump({"profile": "test", "device": "cpu", "models": {"tiny": {"source": "tiny"}},
                                      "training": training,
                                      "experiments": {"e": {"base_model": "tiny", "dataset": "cut-iter1"}}}))
    common = ["--config", str(config), "--experiment", "e", "--base-model", str(tiny_model_dir), "--instances",
              str(instances_file), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "repro.cli", "train", *common, "--out", str(tmp_path / "ddp" / "adapter")],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = _run(tmp_path, tiny_model_dir, instances_file, "single", micro_batch_size=8, max_steps=2,
                  learning_rate=1e-2, warmup_steps=0, lr_scheduler="cosine")
    _assert_same(single, load_file(tmp_path / "ddp/adapter/adapter_model.safetensors"), rtol=1e-5, atol=ADAM_ATOL)
    logs = [[json.loads(x) for x in open(tmp_path / name / "train_log.jsonl")] for name in ("single", "ddp")]
    # 12 examples, released order: the last step is filled up with the first examples of the epoch
    assert [r["examples"] for r in logs[0]] == [r["examples"] for r in logs[1]] == [8, 8]
    for a, b in zip(*logs):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["flagged_rate"] == pytest.approx(b["flagged_rate"], rel=1e-6)
    manifest = json.loads((tmp_path / "ddp/adapter/manifest.json").read_text())
    assert manifest["world_size"] == 2


def test_resume_after_a_kill_gives_the_same_losses(tmp_path, tiny_model_dir, instances_file):
    config = tmp_path / "cfg.yaml"
    training = {"batch_size": 2, "micro_batch_size": 1, "max_steps": 6, "warmup_steps": 2, "precision": "fp32",
                "save_steps": 1, "learning_rate": 1.0e-2,
                "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "targets": ["gate_proj", "down_proj", "up_proj"]}}
    config.write_text(yaml.safe_dump({"profile": "test", "device": "cpu", "models": {"tiny": {"source": "tiny"}},
                                      "training": training,
                                      "experiments": {"e": {"base_model": "tiny", "dataset": "cut-iter1"}}}))

    def command(name):
        return [sys.executable, "-m", "repro.cli", "train", "--config", str(config), "--experiment", "e",
                "--base-model", str(tiny_model_dir), "--instances", str(instances_file), "--no-progress",
                "--resume", "--out", str(tmp_path / name / "adapter")]

    subprocess.run(command("straight"), check=True, capture_output=True, cwd=ROOT)
    victim = subprocess.Popen(command("killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    checkpoint = tmp_path / "killed/checkpoints/step-2.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed/adapter/adapter_model.safetensors").exists(), "killed too late to test resume"
    subprocess.run(command("killed"), check=True, capture_output=True, cwd=ROOT)

    straight = [json.loads(x) for x in open(tmp_path / "straight/train_log.jsonl")]
    resumed = [json.loads(x) for x in open(tmp_path / "killed/train_log.jsonl")]
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(straight, resumed):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6) and a["lr"] == pytest.approx(b["lr"])
    manifest = json.loads((tmp_path / "killed/adapter/manifest.json").read_text())
    assert manifest["resumed_from_step"] >= 2
    _assert_same(load_file(tmp_path / "straight/adapter/adapter_model.safetensors"),
                 load_file(tmp_path / "killed/adapter/adapter_model.safetensors"))


# ------------------------------------------------------------------------------------ bad input

def test_bad_input_is_a_clear_error(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="x.jsonl: no training instances"):
        encode_instances(tokenizer, [], 2048, "x.jsonl")
    long = {"kind": "align_p", "source_index": 0, "prompt": "Q:\n", "response": "word " * 400}
    kept = encode_instances(tokenizer, [long], 64, "x.jsonl")  # released: kept, truncated through the prompt
    assert kept.stats()["overlong_kept_truncated"] == 1 and len(kept.examples[0].first.ids) == 65
    with pytest.raises(ValueError, match="x.jsonl: every one of the 1 instances .* fills cutoff_len 64"):
        encode_instances(tokenizer, [long], 64, "x.jsonl", long_responses="drop")
    # the judgment prompt ends in a space, so " the" merges differently than after the plain prompt's newline
    split = {"kind": "align_n", "source_index": 3, "prompt": "Judged: bad ", "misalign_prompt": "Plain:\n",
             "response": "the answer"}
    with pytest.raises(ValueError, match="tokenises differently"):
        encode_instance(tokenizer, split, 2048, "x.jsonl, record 3")
    with pytest.raises(FileNotFoundError, match="base model 'no-such-model'"):
        load_model("no-such-model", _training(), torch.device("cpu"))


def test_base_weights_load_in_the_configured_dtype(tiny_model_dir):
    """The released script loads the base in fp16 before quantising (weights_dtype: fp16 in the paper profile);
    auto follows the compute precision. The LoRA weights stay fp32 either way."""
    fp16 = load_model(str(tiny_model_dir), _training(weights_dtype="fp16"), torch.device("cpu"))
    auto = load_model(str(tiny_model_dir), _training(), torch.device("cpu"))
    base = "base_model.model.model.layers.0.mlp.up_proj.base_layer.weight"
    lora = "base_model.model.model.layers.0.mlp.up_proj.lora_A.default.weight"
    assert dict(fp16.named_parameters())[base].dtype == torch.float16
    assert dict(auto.named_parameters())[base].dtype == torch.float32
    assert dict(fp16.named_parameters())[lora].dtype == torch.float32


def test_nan_loss_stops_training(tmp_path, tiny_model_dir, instances_file):
    import shutil

    from safetensors.torch import save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = load_file(broken / "model.safetensors")
    weights["lm_head.weight"][0, 0] = float("nan")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(FloatingPointError, match="the loss is nan"):
        train(TrainJob(str(broken), instances_file, tmp_path / "out", _training(), device="cpu", progress=False))


def test_merge_gives_the_same_logits_as_base_plus_adapter(tmp_path, tiny_model_dir, instances_file):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from repro.cut.train import merge

    adapter = tmp_path / "run" / "adapter"
    train(TrainJob(str(tiny_model_dir), instances_file, adapter, _training(max_steps=2), device="cpu",
                   progress=False))
    merged = merge(str(tiny_model_dir), adapter, tmp_path / "merged", dtype="fp32")
    ids = torch.tensor([[1, 40, 50, 60, 70]])
    with torch.no_grad():
        unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(adapter))
        expected = unmerged(ids).logits
        got = AutoModelForCausalLM.from_pretrained(merged)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(base, expected)  # the adapter changed something


def test_full_fine_tuning_writes_a_full_model(tmp_path, tiny_model_dir, instances_file):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "full" / "model"
    train(TrainJob(str(tiny_model_dir), instances_file, out, _training(finetune="full", learning_rate=1e-3),
                   device="cpu", progress=False))
    tuned = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [n for (n, a), (_, b) in zip(tuned.named_parameters(), base.named_parameters()) if not torch.equal(a, b)]
    assert "lm_head.weight" in changed and any("mlp.gate_proj" in n for n in changed)
    assert json.loads((out / "manifest.json").read_text())["training"]["finetune"] == "full"
