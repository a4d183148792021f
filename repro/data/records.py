"""The normalised record every converter produces, and field checks that name file, record and field."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from repro.errors import DataError

POSITIVE_SCORE = 7  # released rule: a `score` >= 7 makes an example Align-P and drops its judgment


@dataclass
class Record:
    instruction: str
    input: str
    output: str
    judgment: str | None  # None: positive (Align-P)
    source_index: int  # position in the source file(s), so every record can be traced back
    refinement: str | None = None  # human refinement (`i_ans` in the released code)
    score: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def positive(self) -> bool:
        return self.judgment is None

    def to_json(self) -> dict:
        return asdict(self)


def apply_positive_rule(judgment: str | None, score: float | None) -> str | None:
    """Released rule (docs/method.md): positive if there is no judgment, or if score >= 7 (judgment dropped)."""
    if score is not None and score >= POSITIVE_SCORE:
        return None
    return judgment


class FieldReader:
    """Typed access to one raw record; every failure names the file, the record and the field."""

    def __init__(self, file, index: int, row: Any, label: str = "record"):
        self.file, self.index, self.row = file, index, row
        self.where = f"{label} {index}"
        if not isinstance(row, dict):
            raise DataError(file, self.where, None, f"expected a JSON object, got {type(row).__name__}")

    def fail(self, name: str, message: str):
        raise DataError(self.file, self.where, name, message)

    def get(self, path: str, kind: type | tuple[type, ...], *, optional: bool = False, nonempty: bool = False):
        value: Any = self.row
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                if optional:
                    return None
                self.fail(path, "missing")
            value = value[part]
        if value is None and optional:
            return None
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.fail(path, f"expected {_names(kind)}, got bool")
        if not isinstance(value, kind):
            self.fail(path, f"expected {_names(kind)}, got {type(value).__name__}")
        if nonempty and isinstance(value, str) and not value.strip():
            self.fail(path, "empty")
        return value


def _names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)
