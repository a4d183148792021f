"""`cut_loss_from_hidden` (the loss from hidden states, logits never materialised) against the logits path and an
independent float64 reference, over shapes, thresholds, alpha, gamma, combine modes, Table 4's switches, a bias and
a logit soft-cap; no [B, T, V] tensor at any time; bad input."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from repro.cut.loss import cut_loss, cut_loss_from_hidden

from helpers import make_batch, naive_cut_loss

RTOL, ATOL = 1e-4, 1e-7
SETTINGS = [
    dict(threshold=1.1, alpha=1.0, gamma=0.0, combine="mean"),
    dict(threshold=1.2, alpha=0.5, gamma=1.0, combine="sum"),
    dict(threshold=0.9, alpha=0.25, gamma=2.0, combine="mean"),
    dict(threshold=1.1, alpha=1.0, gamma=0.5, combine="mean", use_l1=False),
    dict(threshold=1.1, alpha=1.0, gamma=0.5, combine="sum", use_align_n_mle=False),
    dict(threshold=1.1, alpha=0.5, gamma=1.0, combine="mean", detection=False),
]
SHAPES = [dict(vocab=37, length=9, mis_length=7, d=8), dict(vocab=101, length=13, mis_length=16, d=5),
          dict(vocab=16, length=6, mis_length=6, d=24)]


def inputs(kinds, vocab, length, mis_length, d, seed, bias=False, dtype=torch.float64):
    _, targets, _, mis_targets, negative = make_batch(kinds, vocab, length, mis_length, seed=seed)
    g = torch.Generator().manual_seed(seed + 1000)
    hidden = torch.randn(len(kinds), length, d, generator=g, dtype=torch.float64)
    mis_hidden = torch.randn(int(negative.sum()), mis_length, d, generator=g, dtype=torch.float64)
    weight = torch.randn(vocab, d, generator=g, dtype=torch.float64) * 2 / d ** 0.5
    b = torch.randn(vocab, generator=g, dtype=torch.float64) if bias else None
    leaves = [t.to(dtype) if t is not None else None for t in (hidden, mis_hidden, weight, b)]
    return leaves, targets, mis_targets, negative


def run_hidden(leaves, targets, mis_targets, negative, setting, softcap=None, chunk_elements=64):
    leaves = [t.clone().requires_grad_() if t is not None else None for t in leaves]
    hidden, mis_hidden, weight, bias = leaves
    out = cut_loss_from_hidden(hidden, weight, targets, mis_hidden, mis_targets, negative, bias=bias,
                               softcap=softcap, chunk_elements=chunk_elements, **setting)
    out.loss.backward()
    return out.loss.detach(), grads(leaves), out


def logits_of(hidden, weight, bias, softcap):
    z = hidden @ weight.t() + (0 if bias is None else bias)
    return softcap * torch.tanh(z / softcap) if softcap else z


def run_logits(leaves, targets, mis_targets, negative, setting, softcap=None):
    leaves = [t.clone().requires_grad_() if t is not None else None for t in leaves]
    hidden, mis_hidden, weight, bias = leaves
    out = cut_loss(logits_of(hidden, weight, bias, softcap), targets, logits_of(mis_hidden, weight, bias, softcap),
                   mis_targets, negative, **setting)
    out.loss.backward()
    return out.loss.detach(), grads(leaves)


def run_naive(leaves, targets, mis_targets, negative, setting, softcap=None):
    leaves = [t.double().clone().requires_grad_() if t is not None else None for t in leaves]
    hidden, mis_hidden, weight, bias = leaves
    loss = naive_cut_loss(logits_of(hidden, weight, bias, softcap), targets,
                          logits_of(mis_hidden, weight, bias, softcap), mis_targets, negative, **setting)
    loss.backward()
    return loss.detach(), grads(leaves)


def grads(leaves):
    """Each leaf's gradient; a leaf the loss does not reach (an ablation removes its term) has zeros."""
    return [t.grad if t.grad is not None else torch.zeros_like(t) for t in leaves if t is not None]


def assert_same(a, b, rtol=RTOL, atol=ATOL):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    torch.testing.assert_close(loss_a.double(), loss_b.double(), rtol=rtol, atol=atol)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga.double(), gb.double(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"V{s['vocab']}d{s['d']}")
@pytest.mark.parametrize("kinds,seed", [("pnnp", 0), ("nn", 1), ("pnpnn", 2)])
def test_loss_and_gradients_equal_the_logits_path_and_a_float64_reference(setting, shape, kinds, seed):
    """fp32 inputs: hidden, misalign_hidden and weight gradients, against cut_loss on the logits (fp32) and the
    naive released algorithm (float64)."""
    leaves, targets, mis_targets, negative = inputs(kinds, seed=seed, dtype=torch.float32, **shape)
    hidden_path = run_hidden(leaves, targets, mis_targets, negative, setting)
    assert_same(hidden_path[:2], run_logits(leaves, targets, mis_targets, negative, setting))
    assert_same(hidden_path[:2], run_naive(leaves, targets, mis_targets, negative, setting))


@pytest.mark.parametrize("softcap", [None, 2.5])
def test_bias_and_soft_cap(softcap):
    setting = dict(threshold=1.1, alpha=0.5, gamma=1.0, combine="mean")
    leaves, targets, mis_targets, negative = inputs("pnn", vocab=41, length=8, mis_length=10, d=6, seed=5, bias=True,
                                                    dtype=torch.float32)
    hidden_path = run_hidden(leaves, targets, mis_targets, negative, setting, softcap=softcap)
    assert len(hidden_path[1]) == 4  # the bias trains too
    assert_same(hidden_path[:2], run_logits(leaves, targets, mis_targets, negative, setting, softcap=softcap))
    assert_same(hidden_path[:2], run_naive(leaves, targets, mis_targets, negative, setting, softcap=softcap))


def test_target_weights_and_chunk_sizes_do_not_change_results():
    """Forward Prediction's per-token weights, and chunks of 1 position up to all of them at once."""
    setting = dict(threshold=1.1, alpha=1.0, combine="mean")
    leaves, targets, mis_targets, negative = inputs("pnpn", vocab=29, length=9, mis_length=7, d=7, seed=3,
                                                    dtype=torch.float32)
    weights = torch.rand(targets.shape, generator=torch.Generator().manual_seed(0))
    reference = run_logits(leaves, targets, mis_targets, negative, {**setting, "target_weights": weights})
    for chunk in (1, 29 * 3, 29 * 1000):
        got = run_hidden(leaves, targets, mis_targets, negative, {**setting, "target_weights": weights},
                         chunk_elements=chunk)
        assert_same(got[:2], reference)


@pytest.mark.parametrize("dtype,rtol,atol", [(torch.bfloat16, 3e-2, 3e-3), (torch.float16, 3e-3, 3e-4)])
def test_half_precision_inputs_agree_with_the_logits_path_in_that_precision(dtype, rtol, atol):
    """The matmul runs in the inputs' dtype as the model's output layer would; the rest in fp32."""
    setting = dict(threshold=1.1, alpha=1.0, gamma=1.0, combine="mean")
    leaves, targets, mis_targets, negative = inputs("pnn", vocab=53, length=10, mis_length=8, d=16, seed=7,
                                                    dtype=dtype)
    hidden_path = run_hidden(leaves, targets, mis_targets, negative, setting)
    assert all(g.dtype == dtype for g in hidden_path[1])
    assert_same(hidden_path[:2], run_naive(leaves, targets, mis_targets, negative, setting), rtol=rtol, atol=atol)


def test_matmul_dtype_gives_the_logits_an_autocast_output_layer_would_give():
    """fp32 hidden states and weight (full fine-tuning under bf16 autocast): with matmul_dtype=bf16 the loss is the
    logits path's on bf16-computed logits, not the fp32 one, and the gradients stay fp32."""
    setting = dict(threshold=1.1, alpha=1.0, gamma=1.0, combine="mean")
    leaves, targets, mis_targets, negative = inputs("pnn", vocab=53, length=10, mis_length=8, d=16, seed=7,
                                                    dtype=torch.float32)
    hidden, mis_hidden, weight, _ = [t.clone().requires_grad_() if t is not None else None for t in leaves]
    out = cut_loss_from_hidden(hidden, weight, targets, mis_hidden, mis_targets, negative,
                               matmul_dtype=torch.bfloat16, **setting)
    out.loss.backward()
    assert all(t.grad.dtype == torch.float32 for t in (hidden, mis_hidden, weight))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, mis_logits = hidden @ weight.t(), mis_hidden @ weight.t()
    bf16_logits = cut_loss(logits.float(), targets, mis_logits.float(), mis_targets, negative, **setting).loss
    torch.testing.assert_close(out.loss, bf16_logits, rtol=1e-6, atol=1e-7)
    fp32 = cut_loss_from_hidden(hidden, weight, targets, mis_hidden, mis_targets, negative, **setting).loss
    assert (out.loss - fp32).abs() > 1e-5  # the dtype was used
    torch.testing.assert_close(out.loss, fp32, rtol=3e-2, atol=3e-3)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operation returns (weight-shaped gradients aside)."""

    def __init__(self, skip_numel: int):
        super().__init__()
        self.skip, self.largest = skip_numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.numel() != self.skip:
                self.largest = max(self.largest, t.numel())
        return out


def test_no_batch_by_vocabulary_tensor_exists_forward_or_backward():
    vocab, length, d = 3000, 24, 8
    leaves, targets, mis_targets, negative = inputs("pnn", vocab=vocab, length=length, mis_length=length, d=d,
                                                    seed=11, dtype=torch.float32)
    leaves = [t.clone().requires_grad_() if t is not None else None for t in leaves[:3]] + [None]
    hidden, mis_hidden, weight, _ = leaves
    with LargestTensor(skip_numel=vocab * d) as watch:
        out = cut_loss_from_hidden(hidden, weight, targets, mis_hidden, mis_targets, negative, threshold=1.1,
                                   alpha=1.0, chunk_elements=4 * vocab)
        out.loss.backward()
    assert watch.largest <= 4 * vocab  # one chunk of 4 positions: never [B, T, V] (3 x 24 x 3000)
    with LargestTensor(skip_numel=vocab * d) as watch:
        hidden @ weight.t()
    assert watch.largest == 3 * length * vocab  # what the logits path holds


def test_bad_input_stops_with_a_clear_error():
    leaves, targets, mis_targets, negative = inputs("pn", vocab=11, length=6, mis_length=6, d=4, seed=0,
                                                    dtype=torch.float32)
    hidden, mis_hidden, weight, _ = leaves
    common = dict(threshold=1.1, alpha=1.0)
    with pytest.raises(ValueError, match=r"weight \(11, 5\) must be \[V, d\] with d = 4"):
        cut_loss_from_hidden(hidden, torch.zeros(11, 5), targets, mis_hidden, mis_targets, negative, **common)
    with pytest.raises(ValueError, match="misalign_hidden has hidden size 3"):
        cut_loss_from_hidden(hidden, weight, targets, mis_hidden[..., :3], mis_targets, negative, **common)
    bad = targets.clone()
    bad[bad != -100] = 11
    with pytest.raises(ValueError, match=r"target id 11 is outside the vocabulary \[0, 11\)"):
        cut_loss_from_hidden(hidden, weight, bad, mis_hidden, mis_targets, negative, **common)


TRAINING_CASES = [("cut", {}), ("cut", {"gamma": 1.0, "combine": "sum"}), ("cut", {"use_l1": False}),
                  ("cut", {"use_align_n_mle": False}), ("cut", {"detection": False}), ("hindsight", {}),
                  ("forward_prediction", {}), ("ilf_mle", {}), ("ai_judge", {})]


@pytest.mark.parametrize("finetune", ["lora", "full"])
@pytest.mark.parametrize("objective,switches", TRAINING_CASES, ids=lambda c: str(c))
def test_a_training_step_from_hidden_states_equals_the_logits_path(tiny_model_dir, store, finetune, objective,
                                                                   switches):
    """One step of the trainer's forward and backward on the tiny model, `cut.from_hidden` on and off: the same
    loss and the same gradient of every trainable parameter (the output embedding's too, in full fine-tuning)."""
    from contextlib import nullcontext

    from transformers import AutoTokenizer

    from repro.config import Training
    from repro.cut.collate import collate, encode_instances
    from repro.cut.hidden import output_layer
    from repro.cut.train import forward_cut, load_model
    from repro.data import prepare
    from repro.data.objectives import build_objective_instances

    rows, _ = prepare("shepherd" if objective == "ilf_mle" else "cut-iter1", store)  # ILF: human refinements
    short = [r for r in rows if len(r["output"]) < 400]
    records = [r for r in short if r["judgment"]][:4] + [r for r in short if r["judgment"] is None][:2]
    instances, _ = build_objective_instances(records, objective, downsample=None)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    batch = collate(encode_instances(tokenizer, instances, 2048).examples, 0)
    results = []
    for from_hidden in (True, False):
        training = Training(finetune=finetune, precision="fp32", objective=objective,
                            lora={"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["gate_proj", "down_proj", "up_proj"]},
                            cut={"threshold": 1.1, "alpha": 0.5, **switches, "from_hidden": from_hidden})
        torch.manual_seed(0)
        model = load_model(str(tiny_model_dir), training, torch.device("cpu"))
        assert (output_layer(model) is not None) is True
        out = forward_cut(model, batch, training, nullcontext())
        out.loss.backward()
        results.append((out.loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (loss_h, grads_h), (loss_l, grads_l) = results
    torch.testing.assert_close(loss_h, loss_l, rtol=RTOL, atol=ATOL)
    assert grads_h.keys() == grads_l.keys() and grads_h
    if finetune == "full":
        assert "lm_head.weight" in grads_h
    for name in grads_h:
        torch.testing.assert_close(grads_h[name], grads_l[name], rtol=RTOL, atol=ATOL, msg=name)
