"""How many tokens lm-eval scoring computes, counted from the real task requests (for `repro plan`).

The suite's task files are built on the prepared data exactly as a scoring job builds them, lm-eval builds every
request (few-shot contexts and answer choices), and each request is tokenised as lm-eval's hf backend does
(context and continuation split at the context's tokens; trailing spaces of the context go to the continuation;
the continuation is encoded on its own here, which can differ by a token at the seam). The counts by backend
(`stock`: lm-eval's hf; `shared`: repro/evaluate/shared_context.py) are cached under the data cache, keyed by the
data, the shots, the limit and the tokenizer.
"""
from __future__ import annotations

import hashlib
import json
import random
import tempfile
from pathlib import Path

from repro.evaluate.lm_eval_run import write_task_files
from repro.evaluate.shared_context import count_tokens
from repro.io import write_json


def build_requests(data: dict[str, Path], shots: dict[str, int], limit: int | None) -> dict[str, dict]:
    """By task of the suite: lm-eval's loglikelihood request instances (its `args` are the (context,
    continuation) strings), built as a scoring job builds them (simple_evaluate's seeds), and how many documents
    and subtasks (MMLU: 57 subjects) they come from."""
    from lm_eval.defaults import DEFAULT_OTHER_SEED
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="repro-requests-") as tmp:
        names = write_task_files(Path(tmp), data, shots)
        loaded = TaskManager(include_path=tmp, include_defaults=False).load(names)
        by_task: dict[str, dict] = {}
        random.seed(0)  # simple_evaluate's seeds: the global one, and the few-shot samplers'
        for name, task in loaded["tasks"].items():
            task.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)
            task.build_all_requests(limit=limit, rank=0, world_size=1)
            family = by_task.setdefault("mmlu" if name.startswith("repro_mmlu") else name.removeprefix("repro_"),
                                        {"instances": [], "documents": 0, "subtasks": 0})
            family["instances"] += task.instances
            family["documents"] += len({i.doc_id for i in task.instances})
            family["subtasks"] += 1
    return by_task


def _encode(tokenizer, requests: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    contexts, continuations = [], []
    for context, continuation in requests:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        contexts.append(context)
        continuations.append(continuation)
    distinct = sorted(set(contexts))
    encoded = dict(zip(distinct, tokenizer(distinct, add_special_tokens=True)["input_ids"]))
    tails = tokenizer(continuations, add_special_tokens=False)["input_ids"]
    return [(encoded[c], t or [tokenizer.eos_token_id]) for c, t in zip(contexts, tails)]


def request_key(data: dict[str, Path], shots: dict[str, int], limit: int | None, tokenizer_id: str,
                max_length: int) -> str:
    """What the counts depend on: the data's bytes, the shots, the limit, the tokenizer, the window, lm-eval."""
    import lm_eval

    return hashlib.sha256(json.dumps({
        "data": {n: hashlib.sha256(Path(p).read_bytes()).hexdigest() for n, p in sorted(data.items())},
        "shots": shots, "limit": limit, "tokenizer": tokenizer_id, "max_length": max_length,
        "lm_eval": getattr(lm_eval, "__version__", None), "version": 2}, sort_keys=True).encode()).hexdigest()[:16]


def scoring_tokens(data: dict[str, Path], shots: dict[str, int], limit: int | None, tokenizer, tokenizer_id: str,
                   max_length: int, cache_dir: Path | None = None, seeds: Path | None = None) -> dict[str, dict]:
    """{task: {requests, contexts, stock, shared, documents, subtasks}} for the suite at these shots on this
    data. Counts already made are read from `seeds` (committed) or `cache_dir`."""
    key = request_key(data, shots, limit, tokenizer_id, max_length)
    if seeds and seeds.is_file():
        for entry in json.loads(seeds.read_text()).values():
            if entry["key"] == key:
                return entry["counts"]
    cached = cache_dir / f"scoring-tokens-{key}.json" if cache_dir else None
    if cached and cached.is_file():
        return json.loads(cached.read_text())
    counts = {task: {**count_tokens(_encode(tokenizer, [tuple(i.args) for i in found["instances"]]), max_length),
                     "documents": found["documents"], "subtasks": found["subtasks"]}
              for task, found in build_requests(data, shots, limit).items()}
    if cached:
        write_json(cached, counts)
    return counts
