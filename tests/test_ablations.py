"""Table 4 ablations: each changes exactly the term it names (and matches the naive reference with that term
removed)."""
from __future__ import annotations

import pytest
import torch

from repro.cut.loss import cut_loss

from helpers import make_batch

SETTING = dict(threshold=1.1, alpha=0.5)


def run(kinds="pnnpn", seed=11, **flags):
    logits, targets, mis_logits, mis_targets, negative = make_batch(kinds, seed=seed)
    logits.requires_grad_()
    mis_logits.requires_grad_()
    out = cut_loss(logits, targets, mis_logits, mis_targets, negative, **SETTING, **flags)
    out.loss.backward()
    return out, logits.grad, mis_logits.grad, negative


def test_without_l1_negatives_are_trained_like_hindsight():
    full, _, _, negative = run()
    ablated, first_grad, mis_grad, _ = run(use_l1=False)
    torch.testing.assert_close(ablated.per_example[negative], full.per_example_nll[negative])  # nll_i only
    torch.testing.assert_close(ablated.per_example[~negative], full.per_example[~negative])  # positives untouched
    assert mis_grad is None or torch.count_nonzero(mis_grad) == 0  # the Misalign sequence gets no gradient
    assert torch.count_nonzero(first_grad) > 0


def test_without_the_second_part_of_l2_negatives_get_only_l1():
    full, _, _, negative = run()
    ablated, first_grad, mis_grad, _ = run(use_align_n_mle=False)
    torch.testing.assert_close(ablated.per_example[negative], full.per_example_unlikelihood[negative])
    torch.testing.assert_close(ablated.per_example[~negative], full.per_example[~negative])
    assert torch.count_nonzero(first_grad[negative]) == 0  # no likelihood on y given [x, j]
    assert torch.count_nonzero(first_grad[~negative]) > 0 and torch.count_nonzero(mis_grad) > 0


def test_without_detection_every_paired_token_gets_unlikelihood():
    full, _, _, negative = run()
    ablated, *_ = run(detection=False)
    assert 0 < full.flagged < full.paired_tokens  # the batch has flagged and unflagged tokens ...
    assert ablated.flagged == ablated.paired_tokens == full.paired_tokens  # ... without detection all are UT
    torch.testing.assert_close(ablated.per_example_nll, full.per_example_nll)  # L2 is untouched
    # equals the full loss with a threshold no ratio can miss
    logits, targets, mis_logits, mis_targets, neg = make_batch("pnnpn", seed=11)
    reference = cut_loss(logits, targets, mis_logits, mis_targets, neg, threshold=1e-30, alpha=0.5)
    torch.testing.assert_close(ablated.loss, reference.loss)


def test_dynamic_weighting_changes_only_the_flagged_terms():
    plain, *_ = run()
    weighted, *_ = run(gamma=1.0)
    torch.testing.assert_close(weighted.per_example_nll, plain.per_example_nll)
    assert weighted.flagged == plain.flagged
    differs = ~torch.isclose(weighted.per_example_unlikelihood, plain.per_example_unlikelihood)
    assert torch.equal(differs, plain.per_example_flagged > 0)  # exactly the examples with flagged tokens


def test_removing_both_terms_is_an_error():
    with pytest.raises(ValueError, match="no loss"):
        run(use_l1=False, use_align_n_mle=False)


def test_without_the_first_part_of_l2_there_are_no_align_p_examples(store):
    from repro.data import build_instances, prepare

    rows, _ = prepare("cut-iter1", store)
    full, _ = build_instances(rows, downsample=0.25)
    none, stats = build_instances(rows, downsample=0.0)
    assert not any(i["kind"] == "align_p" for i in none) and stats["positives_dropped_by_downsampling"] == 713
    assert none == [i for i in full if i["kind"] == "align_n"]  # the negatives are exactly the same


def test_ablation_switches_reach_the_loss_through_the_config():
    from repro.config import Training

    t = Training.model_validate({"cut": {"use_l1": False, "detection": False}})
    assert (t.cut.use_l1, t.cut.use_align_n_mle, t.cut.detection) == (False, True, False)
