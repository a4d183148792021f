"""Judgments on disk, keyed by (judge, prompt), appended and fsynced as they arrive.

A crash or a rerun never loses or repeats a paid call: a finished call is on disk before the next one is counted
as done, and a rerun serves it from here. A half-written last line (a crash mid-write) is cut off and redone;
the complete lines before it are never rewritten.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from repro.io import keep_complete_lines


def judgment_key(judge_identity: dict, prompt) -> str:
    blob = json.dumps({"judge": judge_identity, "prompt": prompt}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgmentCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            for n, line in enumerate(keep_complete_lines(self.path).decode("utf-8").splitlines(), start=1):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f"{self.path}, line {n}: not JSON; the cache is damaged") from None
                if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                    raise ValueError(f"{self.path}, line {n}: a cache entry needs a 'key'; the cache is damaged")
                self.entries[entry["key"]] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        open(self.path, "a", encoding="utf-8").close()  # unwritable (read-only, no rights): found before any call

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, entry: dict) -> None:
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.entries[entry["key"]] = entry

