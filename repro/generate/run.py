"""Run a generation: only the prompts not yet done, each result appended as it finishes, the final file written
atomically with a manifest.

Progress lives in ``<out>.partial.jsonl``: a header line with the run's fingerprint, then one line per finished
prompt. After a crash or kill, a rerun reads it, drops an unfinished last line, and generates only what is
missing, so every prompt ends up exactly once. A partial or final file from other settings is an error, never
silently reused.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from repro.generate.backends import load_tokenizer, make_backend
from repro.generate.prompts import load_prompts
from repro.generate.spec import GenerationSpec, render
from repro.io import check_model_path, exclusive, keep_complete_lines, write_json, write_jsonl


class StaleOutputError(ValueError):
    pass


def _paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".partial.jsonl"), out.with_name(out.name + ".manifest.json")


def read_partial(path: Path, fingerprint: dict) -> dict[str, dict]:
    """Finished results of an interrupted run with the same fingerprint, keyed by str(prompt id)."""
    if not path.exists():
        return {}
    try:
        lines = keep_complete_lines(path).decode("utf-8").splitlines()  # half a line at the end is redone
    except UnicodeDecodeError as err:
        raise StaleOutputError(f"{path}: byte {err.start} is not UTF-8; delete the file to start this generation "
                               "again") from None
    done = {}
    for n, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise StaleOutputError(f"{path}, line {n}: not JSON; delete the file to start this generation "
                                   "again") from None
        if "fingerprint" in row:  # a header (two fresh starts can each write one): it must be this run's
            if row["fingerprint"] != fingerprint:
                raise StaleOutputError(f"{path} belongs to a generation with other settings (model, adapter, "
                                       "backend, decoding, template or prompts); delete it or choose another --out")
            continue
        if n == 1 or not isinstance(row, dict) or "id" not in row or not isinstance(row.get("output"), str):
            raise StaleOutputError(f"{path}, line {n}: not a progress line of this generation (an 'id' and a text "
                                   "'output'); delete the file")
        done[str(row["id"])] = row
    return done


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict):
        raise StaleOutputError(f"{path}: not a generation manifest (damaged or cut short); delete it and the "
                               "output beside it to generate again")
    return manifest


def _append(handle, row: dict) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def run_generation(spec: GenerationSpec, prompt_set: str, out: str | Path, limit: int | None = None, store=None,
                   device: str = "auto", progress: bool = True) -> dict:
    out = Path(out)
    check_model_path(spec.model)
    prompts = load_prompts(prompt_set, store, limit)
    if not prompts:
        raise ValueError(f"{prompt_set}: no prompts to generate for")
    with exclusive(out, "generation"):
        return _generate(spec, prompt_set, prompts, out, device, progress)


def _generate(spec: GenerationSpec, prompt_set: str, prompts: list[dict], out: Path, device: str,
              progress: bool) -> dict:
    partial, manifest_path = _paths(out)
    fingerprint = spec.fingerprint(prompt_set)
    ids = [str(p["id"]) for p in prompts]
    if out.exists() and not (partial.exists() and not manifest_path.exists()):
        # (an output beside its progress file but without a manifest was cut short while being finished, e.g.
        # by a full disk: it is rebuilt from the progress file below)
        manifest = _read_manifest(manifest_path) if manifest_path.exists() else {}
        if manifest.get("fingerprint") == fingerprint and manifest.get("prompt_ids") == ids:
            return manifest  # finished earlier with the same settings: nothing to do
        raise StaleOutputError(f"{out} exists from another generation (settings or prompts differ); delete it "
                               "or choose another --out")

    done = read_partial(partial, fingerprint)
    todo = [p for p in prompts if str(p["id"]) not in done]
    started, new_tokens = time.time(), 0
    if todo:
        tokenizer = load_tokenizer(spec.model)
        rendered = [render(tokenizer, spec.template, p["instruction"], p["input"]) for p in todo]
        prompt_ids = _tokenize_within_context(tokenizer, rendered, todo, prompt_set, spec)
        backend = make_backend(spec, device)
        started = time.time()  # throughput excludes model loading
        partial.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "a", encoding="utf-8") as handle:
            if not done:
                handle.seek(0)
                handle.truncate()
                _append(handle, {"fingerprint": fingerprint})
            bar = _bar(progress, len(todo))
            for index, new_ids in backend.generate(prompt_ids, spec.decoding):
                if tokenizer.eos_token_id in new_ids:
                    new_ids = new_ids[: new_ids.index(tokenizer.eos_token_id)]
                # released: decode prompt + output, keep what follows the prompt's "### Response:", strip; decoding
                # only the new tokens gives the same text without depending on the marker
                text = tokenizer.decode(new_ids, skip_special_tokens=True).strip()
                row = {"id": todo[index]["id"], "output": text, "new_tokens": len(new_ids)}
                _append(handle, row)
                done[str(row["id"])] = row
                new_tokens += len(new_ids)
                if bar:
                    bar.update(1)
                    bar.set_postfix(tokens_per_s=f"{new_tokens / max(time.time() - started, 1e-9):.1f}")
            if bar:
                bar.close()

    results = [{**p, "output": done[str(p["id"])]["output"]} for p in prompts]
    if prompt_set == "alpaca_eval":  # alpaca_eval's own format
        rows = [{"instruction": r["instruction"], "output": r["output"], "generator": spec.generator,
                 "dataset": r["dataset"]} for r in results]
        write_json(out, rows)
    else:
        write_jsonl(out, [{"id": r["id"], "instruction": r["instruction"], "input": r["input"],
                           "output": r["output"], "generator": spec.generator} for r in results])
    elapsed = time.time() - started
    manifest = {"fingerprint": fingerprint, "prompt_ids": ids, "prompts": len(prompts),
                "generated_now": len(todo), "reused_from_partial": len(prompts) - len(todo),
                "new_tokens_now": new_tokens, "seconds_now": elapsed,
                "tokens_per_s_now": new_tokens / elapsed if todo and elapsed > 0 else None}
    write_json(manifest_path, manifest)
    partial.unlink(missing_ok=True)
    return manifest


def model_context(model: str) -> int | None:
    """The model's context window from its config (None where it does not say, e.g. a .gguf file)."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return None
    data = json.loads(config.read_text())
    return data.get("max_position_embeddings") or data.get("n_positions")


def _tokenize_within_context(tokenizer, texts: list[str], prompts: list[dict], prompt_set: str,
                             spec: GenerationSpec) -> list[list[int]]:
    """Token ids of every prompt, refusing (by item) one that leaves no room to generate in the context. A
    prompt far longer than any context is refused before tokenising it (a token is rarely over 16 characters)."""
    context = model_context(spec.model)
    if context is None and getattr(tokenizer, "model_max_length", None) and tokenizer.model_max_length < 10**7:
        context = tokenizer.model_max_length  # a hub id not on disk yet: the tokenizer's limit, where it has one
    if context and spec.decoding.max_new_tokens > context:
        raise ValueError(f"max_new_tokens {spec.decoding.max_new_tokens:,} is beyond the model's context of "
                         f"{context} tokens ({spec.model})")
    ids = []
    for prompt, text in zip(prompts, texts):
        if context and len(text) > 16 * context:
            raise ValueError(f"{prompt_set}, prompt {prompt['id']}: {len(text):,} characters, far beyond the "
                             f"model's context of {context} tokens ({spec.model})")
        tokens = tokenizer(text)["input_ids"]
        if context and len(tokens) >= context:
            raise ValueError(f"{prompt_set}, prompt {prompt['id']}: {len(tokens):,} tokens, no room left to "
                             f"generate in the model's context of {context} tokens ({spec.model})")
        ids.append(tokens)
    return ids


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="generate", unit="prompt")
