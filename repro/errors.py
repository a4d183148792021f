"""The one error type for bad data: it always names the file, the record and the field at fault."""
from __future__ import annotations

import os


class DataError(ValueError):
    def __init__(self, file: str | os.PathLike | None, record: str | int | None, field: str | None, message: str):
        self.file = str(file) if file is not None else None
        self.record = record
        self.field = field
        where = []
        if self.file:
            where.append(f"file {self.file}")
        if record is not None:
            where.append(record if isinstance(record, str) else f"record {record}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class PermanentDataError(DataError):
    """Trying again cannot help (bad bytes, a 4xx answer): not retried."""


class ChecksumError(PermanentDataError):
    pass
