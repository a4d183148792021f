"""Log-likelihood scoring for lm-eval that computes every shared context once.

lm-eval's `hf` backend runs context + continuation through the model for every answer choice: an ARC question
with four choices costs its 25-shot context four times, and MMLU's five few-shot examples, identical for every
question of a subject, are recomputed for each question. This scorer gives the same log-likelihoods from a
radix tree over the tokenised contexts: each shared token prefix is run once, its KV cache kept, and each
context's own tokens and then its continuations are run on top of that cache.

    schedule(contexts)        the plan: which token spans to run, when to score a context, when to cut the cache
    count_tokens(...)         tokens the plan computes against what the stock backend computes (`repro plan`)
    SharedContextLM           lm-eval model "repro_shared": the `hf` backend with `_loglikelihood_tokens` replaced

Equal to the stock backend up to floating-point summation order (tested on every task of the suite); requests
whose context + continuation exceed the model's window, and models whose KV cache cannot be cut back, take the
stock path.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Tokens = tuple[int, ...]


@dataclass(frozen=True)
class Extend:
    """Run contexts[context][start:end] on top of the cache (which then holds `end` tokens)."""
    context: int
    start: int
    end: int


@dataclass(frozen=True)
class Score:
    """The cache holds exactly contexts[context] and the last Extend ended there: score its continuations."""
    context: int


@dataclass(frozen=True)
class Crop:
    """Cut the cache back to its first `length` tokens."""
    length: int


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def schedule(contexts: Sequence[Tokens]) -> list[Extend | Score | Crop]:
    """Operations that visit a radix tree of the (distinct, non-empty) contexts depth first: every token of
    every shared prefix is run once, and each context is scored while the cache holds exactly its tokens."""
    if any(len(c) == 0 for c in contexts):
        raise ValueError("an empty context has nothing to predict its first continuation token from")
    if len(set(contexts)) != len(contexts):
        raise ValueError("contexts must be distinct")
    ops: list[Extend | Score | Crop] = []
    order = sorted(range(len(contexts)), key=lambda i: contexts[i])
    # (a sorted group of contexts that share their first `depth` tokens, depth), or a pending Crop
    stack: list[tuple[list[int], int] | Crop] = [(order, 0)] if order else []
    while stack:
        item = stack.pop()
        if isinstance(item, Crop):
            ops.append(item)
            continue
        group, depth = item
        first, last = contexts[group[0]], contexts[group[-1]]
        shared = _common_prefix(first, last)  # sorted: the first and last share what all share
        if shared > depth:
            ops.append(Extend(group[0], depth, shared))
        if len(first) == shared:  # sorted: a context that is a prefix of the others comes first
            ops.append(Score(group[0]))
            group = group[1:]
        children: list[list[int]] = []
        for i in group:
            if children and contexts[children[-1][0]][shared] == contexts[i][shared]:
                children[-1].append(i)
            else:
                children.append([i])
        for child in reversed(children):  # pushed in reverse: visited in sorted order
            stack.append(Crop(shared))
            stack.append((child, shared))
    return ops


def count_tokens(requests: Sequence[tuple[Sequence[int], Sequence[int]]], max_length: int) -> dict[str, int]:
    """Tokens run through the model for (context, continuation) token pairs, padding not counted: by this scorer
    and by lm-eval's `hf` backend, which runs context + continuation[:-1] once per distinct such sequence (here:
    per distinct context and continuation[:-1], the same but for two splits of one sequence), left-truncated to
    the window. Pairs longer than the window take the stock path in both."""
    contexts: dict[tuple, int] = {}
    pairs = {(contexts.setdefault(tuple(c), len(contexts)), tuple(x)) for c, x in requests}
    lengths = [len(c) for c in contexts]
    stock = {(c, x[:-1]) for c, x in pairs}
    fits = {(c, x) for c, x in pairs if lengths[c] + len(x) <= max_length + 1}
    too_long = {(c, x[:-1]) for c, x in pairs - fits}
    tokens = list(contexts)
    fitting = sorted({c for c, _ in fits})
    shared = sum(op.end - op.start for op in schedule([tokens[c] for c in fitting]) if isinstance(op, Extend))
    shared += sum(len(x) - 1 for _, x in fits) + sum(min(lengths[c] + len(x), max_length) for c, x in too_long)
    return {"requests": len(requests), "contexts": len(fitting), "shared": shared,
            "stock": sum(min(lengths[c] + len(x), max_length) for c, x in stock)}
