"""Small file helpers shared by every stage: atomic writes, JSON/JSONL, sha256."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from repro.errors import DataError


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    A crash or an exception leaves neither a partial `path` nor the temporary file behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the mode any other new file would
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def progress(total: int | None, desc: str, unit: str = "it", **options):
    """A progress bar on an interactive terminal; silent under CI or when stderr is a file (the workflow's logs
    stay readable)."""
    from tqdm import tqdm

    quiet = bool(os.environ.get("CI")) or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, **options)


class Busy(RuntimeError):
    """Another process holds the lock of an output."""


@contextlib.contextmanager
def exclusive(out: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold `<out>.lock` for the block: a second process writing the same output stops at once instead of
    interleaving with the first. The lock goes with the process (a killed run never leaves it held) and the file
    is removed when the block ends; a process that locked a file another one had just removed gives up too."""
    import fcntl

    lock = Path(f"{out}.lock")
    made = [d for d in (lock.parent, *lock.parent.parents) if not d.exists()]  # removed again if left empty
    lock.parent.mkdir(parents=True, exist_ok=True)
    busy = Busy(f"{out}: another {what} is writing it now (lock {lock}); wait for it or choose another output")
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        if not lock.exists() or os.stat(lock).st_ino != os.fstat(handle.fileno()).st_ino:
            raise busy  # (the file this process locked is no longer the lock: leave the new one alone)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)
            for folder in made:
                with contextlib.suppress(OSError):  # not empty: the output is in it
                    folder.rmdir()


def check_model_path(path: str | Path) -> None:
    """A model that is neither a local folder or file nor shaped like a hub id is named, not looked up."""
    if not Path(path).exists() and not looks_like_hub_id(str(path)):
        raise FileNotFoundError(f"{path}: no such model folder (and not a hub id like 'org/name')")


def looks_like_hub_id(name: str) -> bool:
    """'org/name' (or a bare name): what the hub would be asked for, where no local folder of that name exists."""
    parts = name.split("/")
    return len(parts) <= 2 and all(p and not p.startswith(".") for p in parts) and not name.startswith("/")


def follow_umask(folder: str | os.PathLike) -> None:
    """Give the files a library wrote into `folder` the mode any new file gets (safetensors writes 0600)."""
    mode = 0o666 & ~_umask()
    for path in Path(folder).iterdir():
        if path.is_file():
            os.chmod(path, mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON written atomically; NaN and infinity are refused (they are not JSON, and a table would show them)."""
    try:
        text = json.dumps(obj, ensure_ascii=False, indent=2, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"{path}: refusing to write a non-finite number ({err})") from None
    write_text_atomic(path, text + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


TOO_DEEP = "JSON nested too deeply to read (arrays or objects thousands of levels deep)"


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file of objects; a bad line is an error naming the file and the line number."""
    rows = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(path, f"line {number}", None, f"not UTF-8 text (byte {err.start})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(path, f"line {number}", None, f"invalid JSON ({err.msg})") from None
            except RecursionError:
                raise DataError(path, f"line {number}", None, TOO_DEEP) from None
            if not isinstance(row, dict):
                raise DataError(path, f"line {number}", None, f"a {type(row).__name__}, not a JSON object")
            if "\\ud" in line.lower():  # an escaped surrogate: valid JSON, but a lone one is no text
                _check_text(row, path, f"line {number}")
            rows.append(row)
    return rows


def _check_text(value: Any, path, where: str) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataError(path, where, None, f"a lone surrogate ({err.object[err.start:err.end]!a}) is not text; "
                        "fix the escape in the file") from None


def read_json(path: str | os.PathLike) -> Any:

    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise DataError(path, f"line {err.lineno}", None, f"invalid JSON ({err.msg})") from None
    except UnicodeDecodeError as err:
        raise DataError(path, None, None, f"not UTF-8 text (byte {err.start})") from None
    except RecursionError:
        raise DataError(path, None, None, TOO_DEEP) from None


def keep_complete_lines(path: Path) -> bytes:
    """The file's complete lines. A torn last line (a crash mid-append) is cut off by truncating the file at the
    end of the last complete line: one system call that leaves every complete line where it is, so a crash
    during the repair loses nothing either (the file is then as before, or repaired)."""
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if len(complete) != len(raw):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
            handle.flush()
            os.fsync(handle.fileno())
    return complete
