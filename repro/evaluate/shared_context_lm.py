"""lm-eval model `repro_shared`: lm-eval's `hf` backend whose log-likelihoods reuse the KV cache of shared
contexts (the plan is `repro.evaluate.shared_context.schedule`). Everything else (loading, adapters through
`peft=`, tokenisation, generation, rolling log-likelihoods) is the `hf` backend's own.

Importing this module registers the model with lm-eval.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from repro.evaluate.shared_context import Crop, Extend, Score, count_tokens, schedule

log = logging.getLogger(__name__)


@register_model("repro_shared")
class SharedContextLM(HFLM):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens_computed = {"requests": 0, "contexts": 0, "shared": 0, "stock": 0}

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        fits = [i for i, (_, c, x) in enumerate(requests) if len(c) + len(x) <= self.max_length + 1]
        if self.backend != "causal" or not self._croppable():
            log.warning("repro_shared: this model's cache cannot be cut back; using the stock path")
            fits = []
        results: list = [None] * len(requests)
        shared = set(fits)
        rest = [i for i in range(len(requests)) if i not in shared]
        if rest:
            stock = super()._loglikelihood_tokens([requests[i] for i in rest], disable_tqdm, override_bs)
            for i, answer in zip(rest, stock):
                results[i] = answer
        answers = self._score_shared([(tuple(requests[i][1]), tuple(requests[i][2])) for i in fits])
        for i in fits:
            request_str, context, continuation = requests[i]
            answer = answers[(tuple(context), tuple(continuation))]
            results[i] = answer
            if request_str is not None:
                self.cache_hook.add_partial("loglikelihood", request_str, answer)
        counted = count_tokens([(c, x) for _, c, x in requests], self.max_length)
        for key in self.tokens_computed:
            self.tokens_computed[key] += counted[key]
        return results

    def _croppable(self) -> bool:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config).is_croppable

    def _forward(self, ids: torch.Tensor, cache):
        with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                                             enabled=self.mixed_precision_dtype is not None):
            return self.model(input_ids=ids, past_key_values=cache, use_cache=True).logits

    def _score_shared(self, pairs: list[tuple[tuple, tuple]]) -> dict[tuple, tuple[float, bool]]:
        from transformers import DynamicCache

        by_context: dict[tuple, list[tuple]] = {}
        for context, continuation in dict.fromkeys(pairs):
            by_context.setdefault(context, []).append(continuation)
        contexts = list(by_context)
        answers: dict[tuple, tuple[float, bool]] = {}
        cache = DynamicCache(config=self.model.config)
        last = None  # log-probabilities predicted by the last token the cache holds
        for op in schedule(contexts):
            if isinstance(op, Extend):
                ids = torch.tensor([contexts[op.context][op.start:op.end]], device=self.device)
                last = F.log_softmax(self._forward(ids, cache)[0, -1], dim=-1, dtype=self.softmax_dtype)
            elif isinstance(op, Crop):
                _cut(cache, op.length)
            else:
                assert isinstance(op, Score)
                context = contexts[op.context]
                for continuation, answer in self._continuations(cache, len(context), last,
                                                                by_context[context]).items():
                    answers[(context, continuation)] = answer
        return answers

    def _continuations(self, cache, depth: int, first: torch.Tensor, continuations: list[tuple]) -> dict:
        """Each continuation's (log-likelihood, greedy?) given the cached context: its first token from the
        context's last position, the others from one batched run of the continuations' own tokens."""
        out = {}
        single = [c for c in continuations if len(c) == 1]
        for c in single:
            out[c] = (float(first[c[0]]), bool(first.argmax() == c[0]))
        longer = [c for c in continuations if len(c) > 1]
        size = self.batch_size if isinstance(self.batch_size, int) and self.batch_size > 0 else 8
        for start in range(0, len(longer), size):
            chunk = longer[start:start + size]
            width = max(len(c) - 1 for c in chunk)
            ids = torch.tensor([list(c[:-1]) + [c[-1]] * (width - len(c) + 1) for c in chunk], device=self.device)
            if len(chunk) > 1:
                cache.batch_repeat_interleave(len(chunk))
            logprobs = F.log_softmax(self._forward(ids, cache), dim=-1, dtype=self.softmax_dtype)
            if len(chunk) > 1:
                cache.batch_select_indices(torch.tensor([0], device=self.device))
            _cut(cache, depth)
            for row, c in zip(logprobs, chunk):
                rest = row[:len(c) - 1]
                targets = torch.tensor(c[1:], device=self.device)
                total = first[c[0]] + rest.gather(-1, targets[:, None]).sum()
                greedy = bool(first.argmax() == c[0]) and bool((rest.argmax(-1) == targets).all())
                out[c] = (float(total), greedy)
        return out


def _cut(cache, length: int) -> None:
    """Keep the first `length` tokens of the cache (transformers >= 5.18 takes the number of tokens to drop)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)
