"""Judge a file of responses: every row ends with exactly one judgment, served from the cache when it exists.

Input rows: {instruction, input?, output, id?}. Output rows keep them and add ``judgment`` (None when positive,
so the rows are training records as they are), ``judgment_raw`` (the judge's text, always kept), ``positive``,
``parsed`` (False when an AI judge gave no Yes./No. decision: counted as negative) and ``judge``.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from repro.data.records import FieldReader
from repro.judge.cache import JudgmentCache, judgment_key
from repro.judge.openai_api import JudgeAPIError
from repro.judge.prompts import annotation_messages, is_positive

LOCAL_CHUNK = 64  # prompts per local generation call; each finished chunk is cached before the next starts


def make_judge(name: str, config, model_path: str | None = None, adapter: str | None = None,
               backend: str | None = None):
    spec = config.judges.get(name)
    if spec is None:
        raise ValueError(f"unknown judge '{name}'; the config defines: {', '.join(sorted(config.judges)) or 'none'}")
    if spec.kind == "openai":
        from repro.judge.openai_api import OpenAIChatJudge

        return spec, OpenAIChatJudge(spec)
    from repro.judge.local import LocalModelJudge

    if model_path is None:
        model = config.models[spec.model]
        if model.source != "hub":
            raise ValueError(f"judge '{name}': model '{spec.model}' is built locally; pass its folder (--model)")
        model_path = model.path
    if spec.kind == "ai_judge" and adapter is None:
        raise ValueError(f"judge '{name}' is an AI judge: pass the adapter trained by experiment "
                         f"'{spec.adapter_experiment}' (--adapter)")
    return spec, LocalModelJudge(spec, model_path, adapter, backend or config.generation.backend,
                                 config.generation.batch_size)


def _check(rows: list[dict], source: str) -> None:
    for i, row in enumerate(rows):
        f = FieldReader(source, i, row, "line")
        f.get("instruction", str, nonempty=True)
        f.get("output", str)
        f.get("input", str, optional=True)


def _call_api(judge, todo: list[int], prompts: list, record, cache: JudgmentCache) -> None:
    """Every uncached prompt through the API, `max_concurrency` at a time, each answer cached as it arrives.

    Nothing more is sent once the run cannot end well: a judgment that cannot be cached (disk full, read-only), an
    authentication or permission error, or `max_consecutive_failures` calls in a row that failed after their
    retries. Calls already in flight finish. A failed item otherwise does not stop the others; the run then ends
    with an error once every item was tried. Either way the error says how many calls were paid and kept."""
    lock, stop = threading.Lock(), threading.Event()
    state = {"paid": 0, "kept": 0, "consecutive": 0, "failed": [], "reason": None}
    limit = judge.spec.max_consecutive_failures

    def halt(reason: str) -> None:
        if not stop.is_set():
            state["reason"] = reason
            stop.set()

    def call(i: int) -> None:
        if stop.is_set():
            return
        try:
            answer = judge.complete(prompts[i])
        except JudgeAPIError as err:
            with lock:
                state["failed"].append(str(err))
                state["consecutive"] += 1
                if err.stops_run:
                    halt(f"{err}; nothing more is sent")
                elif state["consecutive"] >= limit:
                    halt(f"{limit} calls in a row failed after their retries (judges.*.max_consecutive_failures); "
                         f"last: {err}")
            return
        with lock:
            state["paid"] += 1
            state["consecutive"] = 0
        try:
            record(i, answer)
        except OSError as err:
            with lock:
                halt(f"the judgment cache {cache.path} cannot be written ({err.strerror or err}); nothing more is "
                     "sent, so no judgment is paid for and lost")
            return
        with lock:
            state["kept"] += 1

    with ThreadPoolExecutor(max_workers=judge.spec.max_concurrency) as pool:
        for future in [pool.submit(call, i) for i in todo]:
            future.result()
    if state["reason"] or state["failed"]:
        reason = state["reason"] or f"{len(state['failed'])} of {len(todo)} calls failed; first: {state['failed'][0]}"
        raise JudgeAPIError(f"judge stopped: {reason}. This run paid for {state['paid']} judgments and kept "
                            f"{state['kept']} in {cache.path}; a rerun asks only for the others")


def judge_rows(name: str, judge, rows: list[dict], cache: JudgmentCache, source: str = "inputs") -> tuple[list, dict]:
    _check(rows, source)
    identity = {"name": name, **judge.identity()}
    openai = hasattr(judge, "complete")
    prompts = [annotation_messages(r["instruction"], r.get("input"), r["output"]) if openai else judge.prompt(r)
               for r in rows]
    keys = [judgment_key(identity, p) for p in prompts]
    todo, seen = [], set()  # one call per distinct uncached prompt
    for i, key in enumerate(keys):
        if cache.get(key) is None and key not in seen:
            seen.add(key)
            todo.append(i)
    cached_before = len(rows) - len(todo)

    def record(i: int, answer: dict) -> None:
        cache.put({"key": keys[i], "judge": identity, "prompt": prompts[i], **answer})

    if openai:
        _call_api(judge, todo, prompts, record, cache)
    else:
        for start in range(0, len(todo), LOCAL_CHUNK):
            chunk = todo[start:start + LOCAL_CHUNK]
            for i, text in zip(chunk, judge.complete_many([prompts[i] for i in chunk])):
                record(i, {"text": text, "model": identity["model"], "attempts": 1, "prompt_tokens": 0,
                           "completion_tokens": 0, "usd": 0.0})

    judged, totals = [], {"prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0}
    for i, row in enumerate(rows):
        entry = cache.get(keys[i])
        positive, judgment, parsed = (is_positive(entry["text"]), entry["text"].strip(), True) if openai \
            else judge.verdict(entry["text"])
        judged.append({**row, "source_index": row.get("source_index", i), "judgment": None if positive else judgment,
                       "judgment_raw": entry["text"], "positive": positive, "parsed": parsed, "judge": name})
    for key in set(keys):  # what the judgments cost, each paid call once
        for field in totals:
            totals[field] += cache.get(key).get(field, 0)
    summary = {"judge": identity, "rows": len(rows), "positives": sum(r["positive"] for r in judged),
               "negatives": sum(not r["positive"] for r in judged),
               "unparsed": sum(not r["parsed"] for r in judged), "calls_now": len(todo),
               "from_cache": cached_before, **{f"{k}_total": v for k, v in totals.items()}}
    return judged, summary


def judge_file(name: str, config, inputs: str | Path, out: str | Path, cache_path: str | Path | None = None,
               model_path: str | None = None, adapter: str | None = None, backend: str | None = None) -> dict:
    from repro.io import exclusive, read_jsonl, write_json, write_jsonl

    out = Path(out)
    rows = read_jsonl(inputs)
    if not rows:
        raise ValueError(f"{inputs}: no responses to judge")
    _check(rows, str(inputs))  # before anything is created or sent
    with exclusive(out, "judging"):
        cache = JudgmentCache(cache_path or out.with_name(out.name + ".cache.jsonl"))
        spec, judge = make_judge(name, config, model_path, adapter, backend)
        try:
            judged, summary = judge_rows(name, judge, rows, cache, str(inputs))
        finally:
            if hasattr(judge, "close"):
                judge.close()
        write_jsonl(out, judged)
        summary = {**summary, "inputs": str(inputs), "cache": str(cache.path), "paper_judge": spec.kind == "openai"}
        write_json(out.with_name(out.name.removesuffix(".jsonl") + ".meta.json"), summary)
    return summary
