"""log p(target) from logits without materialising a full-vocabulary softmax for the whole batch.

``token_logprobs`` gathers ``logit[target] - logsumexp(logits)`` in fp32, a chunk of positions at a time, and only
for positions whose target is not ignored (prompt and padding positions cost nothing). Its backward pass
recomputes the softmax chunk by chunk and writes the gradient straight into one buffer of the logits' dtype, so
the extra memory is that buffer plus one fp32 chunk, instead of the several fp32 [B, T, V] tensors that
``log(softmax(logits.float()))`` keeps for autograd.
"""
from __future__ import annotations

import torch

IGNORE = -100
CHUNK_ELEMENTS = 1 << 24  # ~64 MB of fp32 per chunk


class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor, chunk: int):
        flat = logits.reshape(-1, logits.shape[-1])
        out = torch.empty(rows.numel(), dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(out)
        for start in range(0, rows.numel(), chunk):
            idx = rows[start:start + chunk]
            x = flat.index_select(0, idx).float()
            lse[start:start + chunk] = torch.logsumexp(x, dim=-1)
            picked = x.gather(1, targets[start:start + chunk, None]).squeeze(1)
            out[start:start + chunk] = picked - lse[start:start + chunk]
        ctx.save_for_backward(logits, rows, targets, lse)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, rows, targets, lse = ctx.saved_tensors
        flat_shape = (-1, logits.shape[-1])
        flat = logits.reshape(flat_shape)
        grad = torch.zeros_like(flat)
        for start in range(0, rows.numel(), ctx.chunk):
            idx, g = rows[start:start + ctx.chunk], grad_out[start:start + ctx.chunk, None].float()
            probs = torch.exp(flat.index_select(0, idx).float() - lse[start:start + ctx.chunk, None])
            block = probs.mul_(-g)  # d(x_t - lse)/dx = onehot(t) - softmax(x)
            block.scatter_add_(1, targets[start:start + ctx.chunk, None], g)
            grad.index_copy_(0, idx, block.to(grad.dtype))
        return grad.reshape(logits.shape), None, None, None


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Return log p(targets[b, t] | logits[b, t]) in fp32 for every non-ignored target, shape [n_valid], in
    row-major order (example by example, left to right)."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} do not match")
    flat_targets = targets.reshape(-1)
    rows = torch.nonzero(flat_targets != IGNORE).squeeze(1)
    chunk = max(1, chunk_elements // logits.shape[-1])
    return _TokenLogprobs.apply(logits, rows, flat_targets.index_select(0, rows), chunk)
