"""Judge a file of responses: every row ends with exactly one judgment, served from the cache when it exists.

Input rows: {instruction, input?, output, id?}. Output rows keep them and add ``judgment`` (None when positive,
so the rows are training records as they are), ``judgment_raw`` (the judge's text, always kept), ``positive``,
``parsed`` (False when an AI judge gave no Yes./No. decision: counted as negative) and ``judge``.
"""
from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from repro.data.records import FieldReader
from repro.io import exclusive, progress, read_jsonl, write_json, write_jsonl
from repro.judge.cache import JudgmentCache, judgment_key
from repro.judge.openai_api import JudgeAPIError, OpenAIChatJudge
from repro.judge.prompts import annotation_messages, is_positive

LOCAL_CHUNK = 64  # prompts per local generation call; each finished chunk is cached before the next starts


def make_judge(name: str, config, model_path: str | None = None, adapter: str | None = None,
               backend: str | None = None):
    spec = config.judges.get(name)
    if spec is None:
        raise ValueError(f"unknown judge '{name}'; the config defines: {', '.join(sorted(config.judges)) or 'none'}")
    if spec.kind == "openai":
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
    authentication or permission error, `max_consecutive_failures` calls in a row that failed after their
    retries, or SIGTERM / SIGINT. Calls already in flight finish and are cached. A failed item otherwise does not
    stop the others; the run then ends with an error once every item was tried. Either way the error says how
    many calls were paid, kept, and paid but lost."""
    lock, stop = threading.Lock(), threading.Event()
    state = {"paid": 0, "kept": 0, "lost": 0, "consecutive": 0, "failed": [], "reason": None}
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
                state["lost"] += 1
                halt(f"the judgment cache {cache.path} cannot be written ({err.strerror or err}); nothing more is "
                     "sent")
            return
        with lock:
            state["kept"] += 1

    def call_and_count(i: int) -> None:
        try:
            call(i)
        finally:
            bar.update(1)

    with progress(len(todo), "judging", unit="call") as bar, _stop_on_signals(halt), \
            ThreadPoolExecutor(max_workers=judge.spec.max_concurrency) as pool:
        for future in [pool.submit(call_and_count, i) for i in todo]:
            future.result()
    if state["reason"] or state["failed"]:
        reason = state["reason"] or f"{len(state['failed'])} of {len(todo)} calls failed; first: {state['failed'][0]}"
        lost = (f"; {state['lost']} answers received while the cache could not be written are lost and will be "
                "bought again" if state["lost"] else "")
        raise JudgeAPIError(f"judge stopped: {reason}. This run paid for {state['paid']} judgments and kept "
                            f"{state['kept']} in {cache.path}{lost}; a rerun asks only for the others")


@contextmanager
def _stop_on_signals(halt):
    """SIGTERM and SIGINT stop sending; the calls in flight finish and are cached before the run ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda number, _: halt(f"{signal.Signals(number).name} received; nothing more is sent, "
                                                   "the calls in flight were waited for and cached"))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def judge_rows(name: str, judge, rows: list[dict], cache: JudgmentCache, source: str = "inputs",
               retry_unusable: bool = False) -> tuple[list, dict]:
    """Judge every row, through the cache. An answer that was paid for but cannot be used (its content is not
    text) stays in the cache, is not bought again unless `retry_unusable`, and stops the run naming the items."""
    _check(rows, source)
    identity = {"name": name, **judge.identity()}
    openai = hasattr(judge, "complete")
    prompts = [annotation_messages(r["instruction"], r.get("input"), r["output"]) if openai else judge.prompt(r)
               for r in rows]
    keys = [judgment_key(identity, p) for p in prompts]
    todo, seen = [], set()  # one call per distinct uncached prompt
    for i, key in enumerate(keys):
        entry = cache.get(key)
        if (entry is None or (retry_unusable and entry.get("unusable"))) and key not in seen:
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

    unusable = sorted({i for i, key in enumerate(keys) if cache.get(key).get("unusable")})
    if unusable:
        shown = ", ".join(str(rows[i].get("source_index", i)) for i in unusable[:10])
        raise JudgeAPIError(f"{len(unusable)} judgments were paid for but cannot be used (e.g. "
                            f"{cache.get(keys[unusable[0]])['unusable']}): items {shown}; they stay in {cache.path} "
                            "and are not bought again unless you ask (repro judge --retry-unusable)")
    judged, totals = [], {"prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0}
    unknown = 0
    for i, row in enumerate(rows):
        entry = cache.get(keys[i])
        positive, judgment, parsed = (is_positive(entry["text"]), entry["text"].strip(), True) if openai \
            else judge.verdict(entry["text"])
        judged.append({**row, "source_index": row.get("source_index", i), "judgment": None if positive else judgment,
                       "judgment_raw": entry["text"], "positive": positive, "parsed": parsed, "judge": name})
    for key in set(keys):  # what the judgments cost, each paid call once (unknown where usage was not reported)
        entry = cache.get(key)
        unknown += entry.get("usd", 0) is None
        for field in totals:
            totals[field] += entry.get(field) or 0
    summary = {"judge": identity, "rows": len(rows), "positives": sum(r["positive"] for r in judged),
               "negatives": sum(not r["positive"] for r in judged),
               "unparsed": sum(not r["parsed"] for r in judged), "calls_now": len(todo),
               "from_cache": cached_before, **{f"{k}_total": v for k, v in totals.items()},
               "calls_with_unknown_cost": unknown}
    return judged, summary


def judge_file(name: str, config, inputs: str | Path, out: str | Path, cache_path: str | Path | None = None,
               model_path: str | None = None, adapter: str | None = None, backend: str | None = None,
               retry_unusable: bool = False) -> dict:
    out = Path(out)
    rows = read_jsonl(inputs)
    if not rows:
        raise ValueError(f"{inputs}: no responses to judge")
    _check(rows, str(inputs))  # before anything is created or sent
    with exclusive(out, "judging"):
        cache = JudgmentCache(cache_path or out.with_name(out.name + ".cache.jsonl"))
        spec, judge = make_judge(name, config, model_path, adapter, backend)
        try:
            judged, summary = judge_rows(name, judge, rows, cache, str(inputs), retry_unusable)
        finally:
            if hasattr(judge, "close"):
                judge.close()
        write_jsonl(out, judged)
        summary = {**summary, "inputs": str(inputs), "cache": str(cache.path), "paper_judge": spec.kind == "openai"}
        write_json(out.with_name(out.name.removesuffix(".jsonl") + ".meta.json"), summary)
    return summary
