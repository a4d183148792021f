"""Judgments on disk, keyed by (judge, prompt), appended and fsynced as they arrive.

A crash or a rerun never loses or repeats a paid call: a finished call is on disk before the next one is counted
as done, and a rerun serves it from here. A half-written last line (a crash mid-write) is ignored and redone.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path


def judgment_key(judge_identity: dict, prompt) -> str:
    blob = json.dumps({"judge": judge_identity, "prompt": prompt}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgmentCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8")
            lines = text.splitlines()
            torn = False
            for n, line in enumerate(lines):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    if n < len(lines) - 1:
                        raise ValueError(f"{self.path}, line {n + 1}: not JSON; the cache is damaged") from None
                    torn = True  # a crash mid-write: that call is redone
                    continue
                self.entries[entry["key"]] = entry
            if torn or (text and not text.endswith("\n")):  # rewrite so the next append starts a fresh line
                kept = lines[:-1] if torn else lines
                self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
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
