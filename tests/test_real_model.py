"""CUT on a real pretrained model (SmolLM2-135M-Instruct) and real Shepherd judgments.

Measured on 4 short Shepherd examples, LoRA r 16 on gate/up/down, lambda 1.1, alpha 1, lr 1e-3, 2 steps: about a
quarter of the Misalign tokens are flagged; the Align-N likelihood rises; the flagged tokens' log p(y|x) rises much
less than in the same run without unlikelihood (alpha 0), and several times more flagged tokens get less likely,
while unflagged tokens move the same in both runs. (In absolute terms the flagged tokens' mean log p(y|x) still
rises at this scale: the likelihood terms on Align-N and on unflagged Misalign tokens generalise.)
"""
from __future__ import annotations

import pytest
import torch

from repro.config import Training
from repro.cut.collate import collate, encode_instances
from repro.cut.logprobs import token_logprobs
from repro.cut.train import TrainRun, load_model, train_step
from repro.data import build_instances, prepare

pytestmark = pytest.mark.slow


def _run(model_dir, examples, pad_id, alpha, steps=2):
    torch.manual_seed(0)
    training = Training.model_validate(dict(batch_size=4, micro_batch_size=4, learning_rate=1e-3, warmup_steps=0,
                                            lr_scheduler="constant", precision="fp32",
                                            cut={"threshold": 1.1, "alpha": alpha}))
    model = load_model(str(model_dir), training, torch.device("cpu"))
    batch = collate(examples, pad_id)

    def logprobs():
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        model.train()
        n = len(examples)
        return token_logprobs(logits[:n], batch.targets), token_logprobs(logits[n:], batch.misalign_targets)

    align_n, misalign = logprobs()
    flagged = torch.exp(align_n - misalign) > 1.1
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    run = TrainRun(model, params, optimizer, scheduler, training, torch.device("cpu"), pad_id)
    for _ in range(steps):
        train_step(run, examples, list(range(len(examples))))
    align_n_after, misalign_after = logprobs()
    return {
        "flagged_share": flagged.float().mean().item(),
        "d_align_n": (align_n_after - align_n).mean().item(),
        "d_flagged": (misalign_after - misalign)[flagged].mean().item(),
        "d_unflagged": (misalign_after - misalign)[~flagged].mean().item(),
        "flagged_down": (misalign_after < misalign)[flagged].float().mean().item(),
    }


def test_cut_detects_and_pushes_down_flagged_tokens_on_smollm2(smollm2_dir, store):
    from transformers import AutoTokenizer

    rows, _ = prepare("shepherd", store)
    instances, _ = build_instances([r for r in rows if len(r["output"]) < 250][:4])
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    examples = encode_instances(tokenizer, instances, 2048).examples
    cut = _run(smollm2_dir, examples, tokenizer.pad_token_id, alpha=1.0)
    control = _run(smollm2_dir, examples, tokenizer.pad_token_id, alpha=0.0)
    print(f"\nCUT {cut}\nalpha=0 control {control}")
    assert 0.05 < cut["flagged_share"] < 0.6  # a non-trivial share of Misalign tokens is flagged
    assert cut["d_align_n"] > 0.05  # p(y | x, j) rises
    assert cut["d_flagged"] < control["d_flagged"] - 0.05  # UT holds the flagged tokens down ...
    assert cut["flagged_down"] >= 2 * control["flagged_down"] and cut["flagged_down"] > 0.1
    assert cut["d_unflagged"] == pytest.approx(control["d_unflagged"], abs=0.03)  # ... and only them
