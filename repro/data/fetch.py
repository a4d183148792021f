"""Resolve a data file to a local path: from a mirror folder, from the download cache, or by downloading it.

Order: a mirror (``REPRO_DATA_MIRROR`` or ``mirror=``) is a local folder in the canonical layout and wins; else the
cache (``REPRO_DATA_CACHE``, default ``~/.cache/repro/data``); else the file is downloaded from its canonical URL,
or from ``REPRO_DATA_BASE_URL/<path>`` when that is set (an HTTP mirror in the canonical layout). Downloads are
checksummed while they stream and written atomically: a corrupt or interrupted download leaves nothing behind.
Hugging Face files follow the hub's own variables: ``HF_ENDPOINT`` (another hub), ``HF_HUB_OFFLINE`` (no hub
download at all) and the token of ``HF_TOKEN`` or of ``huggingface-cli login`` (``$HF_HOME/token``).

Hub files are pinned to a revision by a lock file, ``hub-revisions.json`` in the cache (``REPRO_HUB_LOCK`` names
another one, e.g. a committed copy): {hub repository: commit}. A repository in the lock is fetched at that commit;
one not yet in it is fetched at its branch and the commit the hub says it served (header ``X-Repo-Commit``) is
recorded, so every later file of that repository, on this machine or any that shares the lock, comes from the
same commit.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from repro.data.sources import SOURCES, DataFile, Source
from repro.errors import ChecksumError, DataError, PermanentDataError
from repro.io import atomic_path, progress, read_json, sha256_file, write_json


def source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise DataError(None, None, None, f"unknown data source '{name}'; known: {known}") from None


def data_file(source_name: str, path: str) -> DataFile:
    for entry in source(source_name).files:
        if entry.path == path:
            return entry
    raise DataError(None, None, None, f"data source '{source_name}' has no file '{path}'")


class DataStore:
    def __init__(self, mirror: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                 base_url: str | None = None, retries: int = 3, timeout: float = 60.0):
        self.mirror = Path(mirror).expanduser().resolve() if mirror else None
        self.cache = Path(cache or Path.home() / ".cache" / "repro" / "data").expanduser()
        self.base_url = base_url.rstrip("/") if base_url else None
        self.retries = max(1, retries)
        self.timeout = timeout
        self._retry_sleep = 2.0  # seconds, doubled each attempt

    @classmethod
    def from_env(cls, mirror: str | os.PathLike | None = None, **kwargs) -> DataStore:
        """Explicit arguments first, then REPRO_DATA_MIRROR / REPRO_DATA_CACHE / REPRO_DATA_BASE_URL."""
        return cls(
            mirror=os.environ.get("REPRO_DATA_MIRROR") or mirror,
            cache=kwargs.pop("cache", None) or os.environ.get("REPRO_DATA_CACHE"),
            base_url=kwargs.pop("base_url", None) or os.environ.get("REPRO_DATA_BASE_URL"),
            **kwargs,
        )

    @property
    def hub_lock_path(self) -> Path:
        return Path(os.environ.get("REPRO_HUB_LOCK") or self.cache / "hub-revisions.json").expanduser()

    def hub_lock(self) -> dict[str, str]:
        """{hub repository: pinned commit} ({} before the first hub download)."""
        path = self.hub_lock_path
        lock = read_json(path) if path.is_file() else {}
        if not isinstance(lock, dict) or not all(isinstance(v, str) and v for v in lock.values()):
            raise DataError(path, None, None, "a hub lock file must be a JSON object {repository: commit}")
        return lock

    def path(self, source_name: str, path: str) -> Path:
        """Local path of one file of a source, fetching it if needed."""
        entry = data_file(source_name, path)
        if self.mirror is not None:
            local = self.mirror / entry.path
            if not local.is_file():
                expected = f" (expected sha256 {entry.sha256})" if entry.sha256 else ""
                raise DataError(local, None, None, f"data source '{source_name}' is not in the mirror {self.mirror}"
                                + expected + (f" ({source(source_name).note})" if source(source_name).note else ""))
            _verify(local, entry.sha256)
            return local
        cached = self.cache / entry.path
        if cached.is_file():
            return cached
        self._fetch(entry, cached)
        return cached

    def _fetch(self, entry: DataFile, dest: Path) -> None:
        if self.base_url:
            url, member = f"{self.base_url}/{entry.path}", None
        elif entry.archive:
            url, member = entry.archive, entry.member
        elif entry.url:
            url, member = hub_url(entry.url, self.hub_lock()), None
        else:
            raise DataError(dest, None, None, f"'{entry.path}' has no public download; put it in a mirror folder "
                            "and set REPRO_DATA_MIRROR")
        if member is None:
            served: dict[str, str] = {}
            self._retry(lambda: download(url, dest, entry.sha256, timeout=self.timeout, headers=served))
            commit, repo = served.get("x-repo-commit"), hub_repo(url)
            if commit and repo and repo not in (lock := self.hub_lock()):
                write_json(self.hub_lock_path, {**lock, repo: commit})
            return
        archive = self.cache / "_archives" / url.rsplit("/", 1)[-1]
        if not archive.is_file():
            self._retry(lambda: download(url, archive, None, timeout=self.timeout))
        extract_member(archive, member, dest, entry.sha256)

    def _retry(self, action) -> None:
        for attempt in range(1, self.retries + 1):
            try:
                return action()
            except PermanentDataError:
                raise  # bad bytes or a 4xx answer: trying again will not change them
            except (OSError, urllib.error.URLError, DataError):
                if attempt == self.retries:
                    raise
                time.sleep(min(self._retry_sleep * 2 ** (attempt - 1), 30))


def _verify(path: Path, expected: str | None) -> None:
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(path, None, None, f"sha256 mismatch: expected {expected}, got {actual}")


def download(url: str, dest: str | os.PathLike, sha256: str | None, timeout: float = 60.0,
             headers: dict[str, str] | None = None) -> Path:
    """Stream `url` into `dest`, checking its length and sha256 before the file appears; the response's headers
    (lower-cased names) go into `headers` when it is given."""
    dest = Path(dest)
    digest = hashlib.sha256()
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(_request(url), timeout=timeout) as response, open(tmp, "wb") as out:
                if headers is not None:
                    headers.update({name.lower(): value for name, value in response.headers.items()})
                expected_len = response.headers.get("Content-Length")
                received = 0
                with progress(int(expected_len) if expected_len else None, dest.name, unit="B",
                              unit_scale=True) as bar:
                    while block := response.read(1 << 16):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        bar.update(len(block))
        except urllib.error.HTTPError as err:
            kind = PermanentDataError if 400 <= err.code < 500 else DataError
            raise kind(url, None, None, f"download failed: HTTP {err.code} {err.reason}") from None
        except Exception as err:
            raise DataError(url, None, None, f"download interrupted: {err!r}") from None
        if expected_len is not None and received != int(expected_len):
            raise DataError(url, None, None, f"download interrupted: got {received} of {expected_len} bytes")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ChecksumError(url, None, None, f"sha256 mismatch: expected {sha256}, got {digest.hexdigest()}")
    return dest


HUB_ORIGIN = "https://huggingface.co"


def _hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or HUB_ORIGIN).rstrip("/")


def hub_url(url: str, lock: dict[str, str] | None = None) -> str:
    """A hub file's URL on HF_ENDPOINT, at the commit `lock` pins for its repository; refused under
    HF_HUB_OFFLINE (the mirror or the cache must hold it)."""
    if not url.startswith(HUB_ORIGIN + "/"):
        return url
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise PermanentDataError(url, None, None, "HF_HUB_OFFLINE is set, and the file is neither in the mirror "
                                 "(REPRO_DATA_MIRROR) nor in the download cache (REPRO_DATA_CACHE)")
    path = url[len(HUB_ORIGIN):]
    repo, _, rest = path.partition("/resolve/")
    if lock and (commit := lock.get(repo.strip("/"))):
        path = f"{repo}/resolve/{commit}/{rest.partition('/')[2]}"
    return _hub_endpoint() + path


def hub_repo(url: str) -> str | None:
    """'datasets/tatsu-lab/alpaca_eval' or 'meta-llama/Llama-2-13b-chat-hf' for a hub file's URL (on any
    endpoint), None for another URL."""
    endpoint = _hub_endpoint()
    if not url.startswith(endpoint + "/") or "/resolve/" not in url:
        return None
    return url[len(endpoint):].partition("/resolve/")[0].strip("/")


def _hub_token() -> str | None:
    """HF_TOKEN, else the token `huggingface-cli login` saved (HF_TOKEN_PATH, else $HF_HOME/token)."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface").expanduser()
    saved = Path(os.environ.get("HF_TOKEN_PATH") or home / "token").expanduser()
    return saved.read_text().strip() or None if saved.is_file() else None


def _request(url: str) -> urllib.request.Request:
    """Gated hub files (the tokenizers) need a token, sent only to the hub's host, never logged."""
    request = urllib.request.Request(url)
    hub_host = urllib.parse.urlparse(_hub_endpoint()).netloc
    if urllib.parse.urlparse(url).netloc == hub_host and (token := _hub_token()):
        request.add_header("Authorization", f"Bearer {token}")
    return request


def extract_member(archive: Path, member: str, dest: Path, sha256: str | None) -> Path:
    with atomic_path(dest) as tmp:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
        else:
            with tarfile.open(archive) as tf:
                src = tf.extractfile(member)
                if src is None:
                    raise DataError(archive, None, None, f"archive has no file member '{member}'")
                with src, open(tmp, "wb") as out:
                    shutil.copyfileobj(io.BufferedReader(src), out)
        _verify(tmp, sha256)
    return dest
