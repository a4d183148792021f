"""Oracle tests: `cut_loss` against a deliberately naive float64 implementation of the released algorithm
(tests/helpers.py: a full softmax over the vocabulary, the log of the probabilities, pairing by the order of
non-ignored labels, the +1e-5 guard on 1 - p == 0, and a loop over examples; docs/method.md)."""
from __future__ import annotations

import pytest
import torch

from repro.cut.logprobs import token_logprobs
from repro.cut.loss import cut_loss

from helpers import make_batch, naive_cut_loss

SETTINGS = [
    dict(threshold=1.1, alpha=1.0, gamma=0.0, combine="mean"),
    dict(threshold=1.2, alpha=0.5, gamma=0.0, combine="mean"),
    dict(threshold=1.2, alpha=0.25, gamma=0.5, combine="sum"),
    dict(threshold=0.5, alpha=1.0, gamma=2.0, combine="mean"),
    dict(threshold=3.0, alpha=0.5, gamma=1.0, combine="sum"),
]


def _both(kinds, setting, dtype=torch.float32, seed=0, **shape):
    logits, targets, mis_logits, mis_targets, negative = make_batch(kinds, dtype=dtype, seed=seed, **shape)
    ours_in = [logits.clone().requires_grad_(), mis_logits.clone().requires_grad_()]
    ref_in = [logits.clone().double().requires_grad_(), mis_logits.clone().double().requires_grad_()]
    out = cut_loss(ours_in[0], targets, ours_in[1], mis_targets, negative, **setting)
    ref = naive_cut_loss(ref_in[0], targets, ref_in[1], mis_targets, negative, **setting)
    out.loss.backward()
    ref.backward()
    return out, ref, ours_in, ref_in


@pytest.mark.parametrize("kinds", ["p", "n", "pppp", "nnn", "pnpn", "nppn", "npnnp"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_naive_reference_fp32(kinds, setting, seed):
    out, ref, ours_in, ref_in = _both(kinds, setting, seed=seed)
    torch.testing.assert_close(out.loss.double(), ref, rtol=1e-4, atol=1e-7)
    for ours, theirs in zip(ours_in, ref_in):
        if ours.numel():
            torch.testing.assert_close(ours.grad.double(), theirs.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("shape", [dict(vocab=5, length=3, mis_length=3), dict(vocab=300, length=24, mis_length=30)])
def test_matches_across_shapes(shape):
    out, ref, ours_in, ref_in = _both("npnpn", SETTINGS[2], seed=3, **shape)
    torch.testing.assert_close(out.loss.double(), ref, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ours_in[0].grad.double(), ref_in[0].grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ours_in[1].grad.double(), ref_in[1].grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("dtype,rtol,atol", [(torch.bfloat16, 2e-2, 1e-3), (torch.float16, 2e-3, 1e-4)])
def test_half_precision_logits_are_computed_in_fp32(dtype, rtol, atol):
    # Same low-precision logits on both sides (the reference upcasts them to float64): only the arithmetic differs.
    # Tolerances: bf16 gradients are stored in bf16 (8 mantissa bits, ~4e-3 relative); fp16 in fp16.
    for setting in SETTINGS:
        out, ref, ours_in, ref_in = _both("npnp", setting, dtype=dtype, seed=5)
        assert out.loss.dtype == torch.float32
        torch.testing.assert_close(out.loss.double(), ref, rtol=1e-4, atol=1e-7)  # loss itself is fp32-exact
        assert ours_in[0].grad.dtype == dtype
        torch.testing.assert_close(ours_in[0].grad.double(), ref_in[0].grad, rtol=rtol, atol=atol)
        torch.testing.assert_close(ours_in[1].grad.double(), ref_in[1].grad, rtol=rtol, atol=atol)


def test_flagging_uses_the_ratio_and_counts():
    # One negative, 3 response tokens. Make token 0 far likelier under Align-N than Misalign (flagged),
    # token 1 equal (not flagged), token 2 likelier under Misalign (not flagged).
    vocab = 4
    logits = torch.zeros(1, 3, vocab)
    mis = torch.zeros(1, 3, vocab)
    targets = torch.tensor([[1, 2, 3]])
    logits[0, 0, 1], mis[0, 0, 1] = 5.0, -5.0
    logits[0, 2, 3], mis[0, 2, 3] = -5.0, 5.0
    out = cut_loss(logits, targets, mis, targets.clone(), torch.tensor([True]), threshold=1.1, alpha=1.0)
    assert (out.flagged, out.paired_tokens) == (1, 3)
    p = torch.softmax(mis[0], -1)[[0, 1, 2], [1, 2, 3]]
    nll = -torch.log_softmax(logits[0], -1)[[0, 1, 2], [1, 2, 3]].mean()
    ul = (-torch.log(1 - p[0]) - torch.log(p[1]) - torch.log(p[2])) / 3
    torch.testing.assert_close(out.loss, (nll + ul) / 2)


def test_the_guard_when_p_misalign_is_one():
    logits = torch.full((1, 1, 3), 0.0)
    mis = torch.tensor([[[0.0, 200.0, 0.0]]])  # p_misalign(token 1) == 1 in fp32
    logits[0, 0, 1] = 400.0  # p_alignN == 1 too; make the ratio > threshold by a smaller threshold
    out = cut_loss(logits, torch.tensor([[1]]), mis, torch.tensor([[1]]), torch.tensor([True]),
                   threshold=0.5, alpha=1.0)
    assert out.flagged == 1 and torch.isfinite(out.loss)
    torch.testing.assert_close(out.per_example_unlikelihood[0], -torch.log(torch.tensor(1e-5)))


def test_pairing_mismatch_raises():
    logits, targets, mis_logits, mis_targets, negative = make_batch("pn", seed=2)
    bad = mis_targets.clone()
    bad[bad != -100] = (bad[bad != -100] + 1) % 37
    with pytest.raises(ValueError, match="different response tokens"):
        cut_loss(logits, targets, mis_logits, bad, negative, threshold=1.1, alpha=1.0)
    fewer = mis_targets.clone()
    fewer[0, (fewer[0] != -100).nonzero()[0]] = -100
    with pytest.raises(ValueError, match="different numbers of target tokens"):
        cut_loss(logits, targets, mis_logits, fewer, negative, threshold=1.1, alpha=1.0)
    with pytest.raises(ValueError, match="1 negative examples but 0 Misalign"):
        cut_loss(logits, targets, mis_logits[:0], mis_targets[:0], negative, threshold=1.1, alpha=1.0)


def test_positive_only_batch_is_plain_nll_and_not_halved():
    logits, targets, mis_logits, mis_targets, negative = make_batch("ppp", seed=4)
    out = cut_loss(logits, targets, mis_logits, mis_targets, negative, threshold=1.1, alpha=1.0)
    per_token = [-torch.log_softmax(logits[i], -1)[targets[i] != -100, targets[i][targets[i] != -100]].mean()
                 for i in range(3)]
    torch.testing.assert_close(out.loss, torch.stack(per_token).mean())
    assert out.flagged == 0 and out.paired_tokens == 0


def test_token_logprobs_chunking_does_not_change_results():
    logits, targets, *_ = make_batch("pnpn", vocab=50, length=20, seed=7)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    la, lb = token_logprobs(a, targets), token_logprobs(b, targets, chunk_elements=50 * 3)
    torch.testing.assert_close(la, lb)
    (la * torch.arange(la.numel())).sum().backward()
    (lb * torch.arange(lb.numel())).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    assert (a.grad[targets == -100] == 0).all()
