"""The shared-context scorer: its plan visits every context once with exactly the context's tokens cached and
runs each distinct token prefix once; its log-likelihoods equal lm-eval's stock hf backend on every task of the
suite, on the same requests (tolerance: 1e-4 absolute on a log-likelihood in fp32, same greedy flags)."""
from __future__ import annotations

import random

import pytest

from repro.evaluate.shared_context import Crop, Extend, Score, count_tokens, schedule

TOLERANCE = 1e-4  # fp32: the cached and the one-pass computation differ only in summation order


def simulate(contexts):
    """Replay a schedule on a list standing in for the KV cache; return (cache at each Score, tokens run)."""
    cache, scored, run = [], {}, 0
    for op in schedule(contexts):
        if isinstance(op, Extend):
            assert len(cache) == op.start, "an extension must start where the cache ends"
            assert tuple(cache) == contexts[op.context][:op.start], "an extension must continue its own context"
            cache += contexts[op.context][op.start:op.end]
            run += op.end - op.start
            last_extended = op.context
        elif isinstance(op, Crop):
            assert op.length <= len(cache)
            del cache[op.length:]
        else:
            assert isinstance(op, Score) and op.context not in scored
            assert tuple(cache) == contexts[last_extended][:len(cache)], "the logits come from the last extension"
            scored[op.context] = tuple(cache)
    return scored, run


@pytest.mark.parametrize("seed", range(20))
def test_the_plan_scores_each_context_once_on_exactly_its_tokens_and_runs_each_prefix_once(seed):
    rng = random.Random(seed)
    stems = [tuple(rng.randrange(5) for _ in range(rng.randrange(1, 6))) for _ in range(4)]
    contexts = set()
    for _ in range(rng.randrange(1, 30)):
        stem = rng.choice(stems) if rng.random() < 0.7 else ()
        tail = tuple(rng.randrange(4) for _ in range(rng.randrange(0 if stem else 1, 5)))
        contexts.add(stem + tail)
    contexts = list(contexts)
    rng.shuffle(contexts)
    scored, run = simulate(contexts)
    assert scored == {i: c for i, c in enumerate(contexts)}
    # independent count: a trie runs one token per distinct non-empty prefix
    assert run == len({c[:k] for c in contexts for k in range(1, len(c) + 1)})


def test_a_context_that_is_a_prefix_of_others_is_scored_before_they_extend_it():
    contexts = [(1, 2, 3), (1, 2), (1, 2, 3, 4), (9,)]
    scored, run = simulate(contexts)
    assert scored == dict(enumerate(contexts)) and run == 5


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="empty context"):
        schedule([(1,), ()])
    with pytest.raises(ValueError, match="distinct"):
        schedule([(1,), (1,)])


def test_token_counts_against_the_stock_backend_worked_by_hand():
    shots = (7,) * 10
    requests = [(shots + (1, 2), (5, 6, 7)), (shots + (1, 2), (8,)), (shots + (3,), (5, 6)), (shots + (3,), (5, 6))]
    counts = count_tokens(requests, max_length=100)
    # stock: 12+2, 12+0, 11+1 (the duplicate once) = 38; shared: 10 shared + 2 + 1 own + continuations 2+0+1 = 16
    assert counts == {"requests": 4, "contexts": 2, "stock": 38, "shared": 16}
    # a pair beyond the window is computed the stock way by both, truncated to it
    assert count_tokens([((1,) * 20, (2, 3))], max_length=8) == {"requests": 1, "contexts": 0, "stock": 8,
                                                                   "shared": 8}


@pytest.fixture(scope="module")
def suite_requests(store, tmp_path_factory):
    """Every task of the suite at the paper's shots, two documents each (MMLU: two per subject)."""
    from repro.evaluate.lm_eval_run import write_eval_data
    from repro.evaluate.request_tokens import build_requests

    data = write_eval_data(store, tmp_path_factory.mktemp("suite"))
    shots = {"arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0}
    return {task: found["instances"] for task, found in build_requests(data, shots, limit=2).items()}


def test_shared_context_log_likelihoods_equal_the_stock_backend_on_every_task(tiny_model_dir, tiny_adapter_dir,
                                                                              suite_requests):
    from lm_eval.models.huggingface import HFLM

    from repro.evaluate.shared_context_lm import SharedContextLM

    assert set(suite_requests) == {"arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2"}
    for adapter in (None, tiny_adapter_dir):
        extra = {"peft": str(adapter)} if adapter else {}
        # a window wide enough for the tiny tokenizer's long MMLU contexts, so every request takes the shared path
        settings = dict(pretrained=str(tiny_model_dir), dtype="float32", device="cpu", batch_size=4,
                        max_length=16384, **extra)
        stock, shared = HFLM(**settings), SharedContextLM(**settings)
        for task, instances in suite_requests.items():
            if adapter and task != "truthfulqa_mc2":
                continue  # the adapter case on one task keeps the test short
            expected = stock.loglikelihood(instances, disable_tqdm=True)
            before = dict(shared.tokens_computed)
            got = shared.loglikelihood(instances, disable_tqdm=True)
            assert len(got) == len(expected) == len(instances)
            for (ll, greedy), (ll_ref, greedy_ref) in zip(got, expected):
                assert abs(ll - ll_ref) <= TOLERANCE, (task, ll, ll_ref)
                assert greedy == greedy_ref, task
            computed = {k: shared.tokens_computed[k] - before[k] for k in before}
            assert computed["shared"] < computed["stock"], (task, computed)  # the context was shared


def test_requests_beyond_the_window_take_the_stock_path_and_still_agree(tiny_model_dir, suite_requests):
    from lm_eval.models.huggingface import HFLM

    from repro.evaluate.shared_context_lm import SharedContextLM

    settings = dict(pretrained=str(tiny_model_dir), dtype="float32", device="cpu", batch_size=4, max_length=512)
    instances = suite_requests["arc_challenge"]  # 25-shot contexts run past 512 tiny-tokenizer tokens
    expected = HFLM(**settings).loglikelihood(instances, disable_tqdm=True)
    got = SharedContextLM(**settings).loglikelihood(instances, disable_tqdm=True)
    assert all(abs(a[0] - b[0]) <= TOLERANCE and a[1] == b[1] for a, b in zip(got, expected))
