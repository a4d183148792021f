"""The CUT loss (Eqs. 5-7; docs/method.md), as a pure function of logits (`cut_loss`) or of the final hidden states
and the output embedding (`cut_loss_from_hidden`, which never materialises the logits; repro/cut/hidden.py).

For each example, ``nll_i`` is the mean negative log-likelihood of its first sequence's targets (Align-P: plain
prompt; Align-N: judgment prompt): L2 of the paper. For a negative example, the k-th target of its Align-N
sequence pairs with the k-th target of its Misalign sequence (plain prompt, same response tokens). A paired token
is flagged when p_alignN / p_misalign > threshold (Eq. 5 with lambda = threshold; the ratio is not
differentiated). Flagged tokens get unlikelihood ``-alpha * p_alignN**gamma * log(1 - p_misalign)`` (the weight
is not differentiated; 1 - p == 0 is guarded with +1e-5 as the released code does), the others
``-log p_misalign``; ``ul_i`` is their mean (L1). ``loss_i`` is ``nll_i`` for a positive, and
``(nll_i + ul_i) / 2`` (``combine="mean"``, the released code) or ``nll_i + ul_i`` (``combine="sum"``, the
paper's L1 + L2) for a negative. ``gamma = 0`` is the released code (no dynamic weighting).

Ablations of Table 4, each removing exactly the term it names (keyword-only, off by default):
``use_l1=False`` ("- L1": no Misalign term; a negative's loss is nll_i, i.e. Hindsight), ``use_align_n_mle=False``
("- second part of L2": a negative's loss is ul_i), ``detection=False`` ("- inappropriate token detection":
every paired token gets unlikelihood). When a term is removed the remaining one is used as is (not halved).
``target_weights`` ([B, L], optional) replaces the mean in ``nll_i`` by a weighted sum over the targets: the MLE
baselines use it (Forward Prediction weighs response and judgment tokens by 1/length each, Eq. 1).
"- first part of L2" removes the Align-P examples (``downsample: 0`` in the config, Figure 7's ratio 0) and
"- dynamic weighting" is ``gamma = 0``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from repro.cut.hidden import CHUNK_ELEMENTS as HIDDEN_CHUNK_ELEMENTS
from repro.cut.hidden import hidden_token_logprobs
from repro.cut.logprobs import IGNORE, token_logprobs

ONE_MINUS_P_GUARD = 1e-5


def flag_tokens(logp_judgment: torch.Tensor, logp_plain: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eq. 5: a response token is flagged when p(token | judgment prompt) / p(token | plain prompt) > lambda.
    Training (Misalign tokens), the held-out test's blame and Figure 2 all flag through this function."""
    return torch.exp(logp_judgment - logp_plain) > threshold


@dataclass
class CutLossOutput:
    loss: torch.Tensor  # mean of loss_i over the B examples
    per_example: torch.Tensor  # [B] loss_i
    nll: torch.Tensor  # mean of nll_i over the B examples (detached)
    unlikelihood: torch.Tensor  # mean of ul_i over the negatives, 0 if none (detached)
    flagged: int  # tokens in U, over the batch
    paired_tokens: int  # paired Align-N / Misalign tokens, over the batch
    per_example_nll: torch.Tensor  # [B] (detached)
    per_example_unlikelihood: torch.Tensor  # [B], 0 for positives (detached)
    per_example_flagged: torch.Tensor  # [B] counts


def cut_loss(logits: torch.Tensor, targets: torch.Tensor, misalign_logits: torch.Tensor,
             misalign_targets: torch.Tensor, negative: torch.Tensor, *, threshold: float, alpha: float,
             gamma: float = 0.0, combine: str = "mean", use_l1: bool = True, use_align_n_mle: bool = True,
             detection: bool = True, target_weights: torch.Tensor | None = None) -> CutLossOutput:
    _check_batch(logits.shape[0], misalign_logits.shape[0], targets, misalign_targets, negative)
    return _cut_from_logprobs(
        token_logprobs(logits, targets), targets, lambda: token_logprobs(misalign_logits, misalign_targets),
        misalign_targets, negative.to(device=logits.device, dtype=torch.bool).reshape(-1),
        threshold=threshold, alpha=alpha, gamma=gamma, combine=combine, use_l1=use_l1,
        use_align_n_mle=use_align_n_mle, detection=detection, target_weights=target_weights)


def cut_loss_from_hidden(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         misalign_hidden: torch.Tensor, misalign_targets: torch.Tensor, negative: torch.Tensor, *,
                         threshold: float, alpha: float, gamma: float = 0.0, combine: str = "mean",
                         use_l1: bool = True, use_align_n_mle: bool = True, detection: bool = True,
                         target_weights: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                         softcap: float | None = None, matmul_dtype: torch.dtype | None = None,
                         chunk_elements: int = HIDDEN_CHUNK_ELEMENTS) -> CutLossOutput:
    """`cut_loss` with the logits never materialised: `hidden` [B, T, d] and `misalign_hidden` [N, T', d] are
    the final hidden states, `weight` [V, d] (and `bias` [V]) the output embedding, `softcap` the logit soft-cap of
    models that have one (logits = cap * tanh(z / cap)), `matmul_dtype` the dtype the output layer's matmuls run in
    (the autocast dtype of the model's forward; default the hidden states' dtype). Same contract, switches and
    output as `cut_loss`."""
    _check_batch(hidden.shape[0], misalign_hidden.shape[0], targets, misalign_targets, negative)
    if misalign_hidden.numel() and misalign_hidden.shape[-1] != hidden.shape[-1]:
        raise ValueError(f"misalign_hidden has hidden size {misalign_hidden.shape[-1]}, hidden {hidden.shape[-1]}")

    def logprobs(h, t):
        return hidden_token_logprobs(h, weight, t, bias, softcap, chunk_elements, matmul_dtype)

    return _cut_from_logprobs(
        logprobs(hidden, targets), targets, lambda: logprobs(misalign_hidden, misalign_targets), misalign_targets,
        negative.to(device=hidden.device, dtype=torch.bool).reshape(-1), threshold=threshold, alpha=alpha,
        gamma=gamma, combine=combine, use_l1=use_l1, use_align_n_mle=use_align_n_mle, detection=detection,
        target_weights=target_weights)


def _check_batch(batch: int, n_misalign: int, targets, misalign_targets, negative) -> None:
    n_neg = int(negative.sum())
    if negative.numel() != batch:
        raise ValueError(f"negative has {negative.numel()} entries for a batch of {batch}")
    if n_misalign != n_neg or misalign_targets.shape[0] != n_neg:
        raise ValueError(f"{n_neg} negative examples but {n_misalign} Misalign sequences")


def _cut_from_logprobs(logp, targets, misalign_logprobs, misalign_targets, negative, *, threshold, alpha, gamma,
                       combine, use_l1, use_align_n_mle, detection, target_weights) -> CutLossOutput:
    """The loss from log p of the first sequences' targets (`logp`, row-major) and, called only once the pairing
    is checked, those of the Misalign sequences."""
    if combine not in ("mean", "sum"):
        raise ValueError(f"combine must be 'mean' or 'sum', got {combine!r}")
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    batch, device = targets.shape[0], logp.device
    n_neg = int(negative.sum())
    valid = targets != IGNORE
    counts = valid.sum(1)
    if (counts == 0).any():
        raise ValueError(f"examples {torch.nonzero(counts == 0).flatten().tolist()} have no target tokens")
    owner = torch.repeat_interleave(torch.arange(batch, device=device), counts)
    if target_weights is None:
        nll = torch.zeros(batch, device=device).index_add(0, owner, -logp) / counts
    else:  # objectives that weigh their targets themselves (Forward Prediction: the sum of two means)
        nll = torch.zeros(batch, device=device).index_add(0, owner, -logp * target_weights[valid])
    per_example = nll
    ul = torch.zeros(batch, device=device)
    flagged_per_example = torch.zeros(batch, dtype=torch.long, device=device)
    paired = 0

    if n_neg:
        neg_rows = torch.nonzero(negative).squeeze(1)
        mis_valid = misalign_targets != IGNORE
        mis_counts = mis_valid.sum(1)
        if not torch.equal(mis_counts, counts[neg_rows]):
            raise ValueError("Align-N and Misalign sequences of a negative example have different numbers of "
                             f"target tokens: {counts[neg_rows].tolist()} vs {mis_counts.tolist()}")
        first_tokens = targets[neg_rows][valid[neg_rows]]
        if not torch.equal(first_tokens, misalign_targets[mis_valid]):
            raise ValueError("Align-N and Misalign sequences of a negative example have different response tokens")
        is_negative_token = negative[owner]
        log_p_align_n = logp[is_negative_token]
        log_p_misalign = misalign_logprobs()
        neg_owner = owner[is_negative_token]
        paired = int(log_p_misalign.numel())

        with torch.no_grad():
            flag = flag_tokens(log_p_align_n, log_p_misalign, threshold)
            if not detection:
                flag = torch.ones_like(flag)
            weight = alpha * torch.exp(gamma * log_p_align_n) if gamma else torch.full_like(log_p_align_n, alpha)
        one_minus_p = -torch.expm1(log_p_misalign)  # 1 - p, accurate near p = 1
        one_minus_p = torch.where(one_minus_p == 0, one_minus_p + ONE_MINUS_P_GUARD, one_minus_p)
        terms = torch.where(flag, -weight * torch.log(one_minus_p), -log_p_misalign)
        ul = torch.zeros(batch, device=device).index_add(0, neg_owner, terms) / counts.clamp(min=1)
        flagged_per_example = torch.zeros(batch, dtype=torch.long, device=device).index_add(
            0, neg_owner, flag.long())
        if use_l1 and use_align_n_mle:
            combined = (nll + ul) / 2 if combine == "mean" else nll + ul
        elif use_l1:
            combined = ul
        elif use_align_n_mle:
            combined = nll
        else:
            raise ValueError("use_l1=False and use_align_n_mle=False leave a negative example with no loss")
        per_example = torch.where(negative, combined, nll)

    return CutLossOutput(
        loss=per_example.mean(), per_example=per_example, nll=nll.detach().mean(),
        unlikelihood=(ul.detach().sum() / n_neg) if n_neg else torch.zeros((), device=device),
        flagged=int(flagged_per_example.sum()), paired_tokens=paired, per_example_nll=nll.detach(),
        per_example_unlikelihood=ul.detach(), per_example_flagged=flagged_per_example,
    )
