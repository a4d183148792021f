"""A vectorised re-implementation of the released CUT loss (modeling_llama_unlikelihood.py), used as the
baseline of the benchmarks: fp32 softmax over the whole vocabulary for every row and position, log of the
probabilities, and one Misalign row per example (all padding for a positive), as the released batches had."""
from __future__ import annotations

import torch


def naive_released_loss(logits: torch.Tensor, labels: torch.Tensor, labels_neg: torch.Tensor,
                        negative: torch.Tensor, threshold: float, alpha: float) -> torch.Tensor:
    """logits [2B, T, V]: B first rows then B Misalign rows (padding rows for positives); labels unshifted."""
    probs = torch.softmax(logits.float(), dim=2)
    batch = logits.shape[0] // 2
    vocab = logits.shape[-1]
    shift_labels = labels[..., 1:].contiguous().view(-1)
    first = probs[:batch][..., :-1, :].contiguous().view(-1, vocab)
    loss = torch.nn.functional.nll_loss(torch.log(first), shift_labels)
    if not negative.any():
        return loss
    shift_probs = probs[..., :-1, :].contiguous()
    lab, lab_neg = labels[..., 1:], labels_neg[..., 1:]
    valid, valid_neg = lab[negative] != -100, lab_neg[negative] != -100
    p_first = shift_probs[:batch].gather(2, lab.clamp(min=0).unsqueeze(-1)).squeeze(-1)[negative][valid]
    p_mis = shift_probs[batch:].gather(2, lab_neg.clamp(min=0).unsqueeze(-1)).squeeze(-1)[negative][valid_neg]
    flag = (p_first / p_mis).detach() > threshold
    p_mis = torch.where(flag, 1 - p_mis, p_mis)
    p_mis = torch.where(p_mis == 0, p_mis + 1e-5, p_mis)
    logp = torch.log(p_mis)
    logp = torch.where(flag, alpha * logp, logp)
    return (loss - logp.sum() / logp.numel()) / 2
