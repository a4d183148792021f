"""log p(target) straight from the final hidden states and the output embedding, never materialising logits.

The logits of a 2048-token sequence over a 128k-256k vocabulary are 0.5-1 GB in fp32, and a negative CUT example
brings three sequences' worth (plus their gradients). Here each chunk of positions gets ``hidden @ weight.T``
(+ bias, then an optional soft-cap ``cap * tanh(z / cap)``), its log-sum-exp and the target's logit, and the
chunk's logits are dropped. No [B, T, V] tensor exists at any time, forward or backward; only positions whose
target is not ignored cost anything.

The gradient of log p(t) with respect to the hidden state is ``s_t * W[t] - sum_v p_v s_v W[v]`` (s = 1, or
1 - tanh^2 under a soft-cap), so the forward pass also keeps, per position, the expectation
``E_p[s W] = (p * s) @ W`` ([n, d], as small as the hidden states): the backward pass then needs no matmul over
the vocabulary for the hidden states, and the whole costs the same two matmuls as logits plus their backward.
The weight's (and bias's) gradient, only when they train, recomputes each chunk's softmax.

The matmuls run in `matmul_dtype` (the autocast dtype the model's own output layer would run in; by default the
hidden states' dtype): under bf16 autocast with fp32 weights (full fine-tuning) an fp32 matmul over the vocabulary
would run at a tenth of the GPU's bf16 rate. The log-sum-exp, the softmax, the expectations and the weight and bias
gradients are computed and accumulated in fp32, whatever the input dtype.
"""
from __future__ import annotations

import torch

from repro.cut.logprobs import IGNORE, token_logprobs

CHUNK_ELEMENTS = 1 << 25  # 128 MB of fp32 logits per chunk: big enough that a chunk's matmul is compute-bound


class _HiddenTokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, rows, targets, chunk: int, softcap, dtype):
        flat = hidden.reshape(-1, hidden.shape[-1])
        w = weight.to(dtype)
        keep_expectation = ctx.needs_input_grad[0]
        n = rows.numel()
        out = torch.empty(n, dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(out)
        expectation = torch.empty(n if keep_expectation else 0, flat.shape[1], dtype=torch.float32,
                                  device=hidden.device)
        target_slope = torch.ones(n if keep_expectation and softcap else 0, dtype=torch.float32, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, n, chunk):
                stop = start + chunk
                z, tanh = _capped(_logits(flat.index_select(0, rows[start:stop]).to(dtype), w, bias), softcap)
                target_logit = z.gather(1, targets[start:stop, None]).squeeze(1)
                p, lse[start:stop] = _softmax_(z)  # z becomes the softmax: one [chunk, V] buffer
                out[start:stop] = target_logit - lse[start:stop]
                if keep_expectation:
                    if tanh is not None:
                        slope = tanh.square_().neg_().add_(1)
                        target_slope[start:stop] = slope.gather(1, targets[start:stop, None]).squeeze(1)
                        p.mul_(slope)
                    expectation[start:stop] = (p.to(w.dtype) @ w).float()
        ctx.save_for_backward(hidden, weight, bias, rows, targets, lse, expectation, target_slope)
        ctx.chunk, ctx.softcap, ctx.dtype = chunk, softcap, dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, rows, targets, lse, expectation, target_slope = ctx.saved_tensors
        g = grad_out.float()[:, None]
        grad_hidden = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            direct = weight.index_select(0, targets).float()
            if ctx.softcap:
                direct.mul_(target_slope[:, None])
            grad_hidden = torch.zeros_like(hidden.reshape(-1, hidden.shape[-1]))
            grad_hidden.index_copy_(0, rows, (g * (direct - expectation)).to(hidden.dtype))
            grad_hidden = grad_hidden.reshape(hidden.shape)
        if ctx.needs_input_grad[1] or (bias is not None and ctx.needs_input_grad[2]):
            grad_weight, grad_bias = _weight_gradients(ctx, hidden, weight, bias, rows, targets, lse, g)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None


def _weight_gradients(ctx, hidden, weight, bias, rows, targets, lse, g):
    """d/dW and d/db of sum_t g_t log p(t): each chunk's softmax recomputed, accumulated in fp32."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    w = weight.to(ctx.dtype)
    low_precision = ctx.dtype in (torch.float16, torch.bfloat16)
    grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) \
        if ctx.needs_input_grad[1] else None
    grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) \
        if bias is not None and ctx.needs_input_grad[2] else None
    with torch.autocast(hidden.device.type, enabled=False):
        for start in range(0, rows.numel(), ctx.chunk):
            stop = start + ctx.chunk
            h = flat.index_select(0, rows[start:stop]).to(ctx.dtype)
            z, tanh = _capped(_logits(h, w, bias), ctx.softcap)
            dz = z.sub_(lse[start:stop, None]).exp_().mul_(-g[start:stop])  # d(z_t - lse)/dz = onehot(t) - p
            dz.scatter_add_(1, targets[start:stop, None], g[start:stop])
            if tanh is not None:
                dz.mul_(tanh.square_().neg_().add_(1))
            if grad_weight is not None and low_precision:  # the chunk's product at the matmul rate, summed in fp32
                grad_weight.add_(dz.to(ctx.dtype).t() @ h)
            elif grad_weight is not None:
                grad_weight.addmm_(dz.t(), h.float())
            if grad_bias is not None:
                grad_bias.add_(dz.sum(0))
    return (None if grad_weight is None else grad_weight.to(weight.dtype),
            None if grad_bias is None else grad_bias.to(bias.dtype))


def _logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    z = h @ weight.t()
    if bias is not None:
        z.add_(bias.to(z.dtype))
    return z.float()


def _capped(z: torch.Tensor, softcap: float | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """cap * tanh(z / cap), and the tanh (z is overwritten)."""
    if not softcap:
        return z, None
    tanh = z.div_(softcap).tanh_()
    return tanh * softcap, tanh


def _softmax_(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Turns z into softmax(z) in place; returns it and logsumexp(z)."""
    top = z.amax(dim=1, keepdim=True)
    total = z.sub_(top).exp_().sum(dim=1, keepdim=True)
    return z.div_(total), (top + total.log()).squeeze(1)


def hidden_token_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          bias: torch.Tensor | None = None, softcap: float | None = None,
                          chunk_elements: int = CHUNK_ELEMENTS,
                          matmul_dtype: torch.dtype | None = None) -> torch.Tensor:
    """log p(targets[b, t]) in fp32 for every non-ignored target, shape [n_valid], row-major, where the logits
    would be ``hidden[b, t] @ weight.T (+ bias)``, soft-capped when ``softcap`` is given, the matmuls in
    ``matmul_dtype`` (default: the hidden states' dtype)."""
    if hidden.dim() != 3 or hidden.shape[:2] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} must be [B, T, d] with targets {tuple(targets.shape)} [B, T]")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight {tuple(weight.shape)} must be [V, d] with d = {hidden.shape[-1]} (the hidden size)")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias {tuple(bias.shape)} must be [V] = [{weight.shape[0]}]")
    flat_targets = targets.reshape(-1)
    rows = torch.nonzero(flat_targets != IGNORE).squeeze(1)
    picked = flat_targets.index_select(0, rows)
    outside = (picked < 0) | (picked >= weight.shape[0])
    if bool(outside.any()):
        raise ValueError(f"target id {int(picked[outside][0])} is outside the vocabulary [0, {weight.shape[0]})")
    chunk = max(1, chunk_elements // weight.shape[0])
    return _HiddenTokenLogprobs.apply(hidden, weight, bias, rows, picked, chunk, softcap,
                                      matmul_dtype or hidden.dtype)


HIDDEN_PATH_MODELS = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2"})


def output_layer(model):
    """(decoder, weight, bias, soft-cap) of a model whose logits are a plain linear output layer on the decoder's
    hidden states, or None (an unknown architecture, or an output layer that is adapted or wrapped)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    if getattr(base.config, "model_type", None) not in HIDDEN_PATH_MODELS or type(head) is not torch.nn.Linear:
        return None
    return base.get_decoder(), head.weight, head.bias, getattr(base.config, "final_logit_softcapping", None)


def target_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    targets: torch.Tensor) -> torch.Tensor:
    """log p of every non-ignored target of a batch, [n_valid] row-major, from the hidden states where the model's
    output layer allows it (no [B, T, V] logits), else from its logits. The held-out scorer and Figure 2 use it."""
    layer = output_layer(model)
    if layer is None:
        return token_logprobs(model(input_ids=input_ids, attention_mask=attention_mask).logits, targets)
    decoder, weight, bias, softcap = layer
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    return hidden_token_logprobs(hidden, weight, targets, bias, softcap)
