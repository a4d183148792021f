"""The download path, for real, against an HTTP server on 127.0.0.1 serving a copy of part of the mirror.

A good download is verified and cached; a corrupted one is a checksum error and nothing is cached; an
interrupted one leaves no partial file and the next attempt succeeds. Also: mirror checksums, archives.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from repro.data import ChecksumError, DataError, DataStore, prepare
from repro.data.fetch import extract_member

from helpers import MirrorServer

SHEPHERD = ("shepherd/human_data_for_model.jsonl", "shepherd/human_data_raw.jsonl")


@pytest.fixture()
def server(tmp_path, mirror):
    served = tmp_path / "served"
    for rel in SHEPHERD:
        (served / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mirror / rel, served / rel)
    with MirrorServer(served) as srv:
        yield srv


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_good_download_is_verified_and_cached(server, tmp_path, mirror):
    cache = tmp_path / "cache"
    store = DataStore(cache=cache, base_url=server.url, retries=1)
    rows, _ = prepare("shepherd", store)
    assert len(rows) == 1317
    assert (cache / SHEPHERD[0]).read_bytes() == (mirror / SHEPHERD[0]).read_bytes()
    assert len(server.requests) == 2
    prepare("shepherd", store)  # served from the cache: no new request
    assert len(server.requests) == 2


def test_corrupted_download_is_an_error_and_nothing_is_cached(server, tmp_path):
    cache = tmp_path / "cache"
    server.mode = "corrupt"
    store = DataStore(cache=cache, base_url=server.url, retries=3)
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        store.path("shepherd", SHEPHERD[0])
    assert len(server.requests) == 1  # bad bytes are not retried
    assert _files(cache) == []


def test_interrupted_download_leaves_nothing_and_the_next_attempt_succeeds(server, tmp_path, mirror):
    cache = tmp_path / "cache"
    server.mode = "truncate"
    store = DataStore(cache=cache, base_url=server.url, retries=1)
    with pytest.raises(DataError, match="download interrupted"):
        store.path("shepherd", SHEPHERD[0])
    assert _files(cache) == []
    server.mode = "good"
    path = store.path("shepherd", SHEPHERD[0])
    assert path.read_bytes() == (mirror / SHEPHERD[0]).read_bytes()


def test_retries_recover_from_a_transient_interruption(server, tmp_path):
    server.mode = "truncate-once"
    store = DataStore(cache=tmp_path / "cache", base_url=server.url, retries=2)
    store._retry_sleep = 0
    assert store.path("shepherd", SHEPHERD[0]).is_file()
    assert len(server.requests) == 2


def test_missing_file_on_the_server(server, tmp_path):
    store = DataStore(cache=tmp_path / "cache", base_url=server.url, retries=3)
    with pytest.raises(DataError, match="HTTP 404"):
        store.path("truthfulqa", "truthfulqa/data/mc_task.json")
    assert len(server.requests) == 1  # a 4xx answer is final: not retried


def test_mirror_checksum_mismatch_is_an_error(tmp_path, mirror):
    fake = tmp_path / "mirror"
    (fake / "shepherd").mkdir(parents=True)
    shutil.copy(mirror / SHEPHERD[1], fake / SHEPHERD[1])
    (fake / SHEPHERD[0]).write_text((mirror / SHEPHERD[0]).read_text().replace("a", "b", 1))
    with pytest.raises(ChecksumError, match="human_data_for_model.jsonl: sha256 mismatch"):
        prepare("shepherd", DataStore(mirror=fake))


def test_data_set_missing_from_the_mirror_says_so(mirror):
    with pytest.raises(DataError, match="'summarization' is not in the mirror"):
        prepare("summarization-train", DataStore(mirror=mirror))


def test_archive_member_is_extracted_and_checked(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inner/x.jsonl", "hello\n")
    out = extract_member(archive, "inner/x.jsonl", tmp_path / "out" / "x.jsonl",
                         "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
    assert out.read_text() == "hello\n"
    with pytest.raises(ChecksumError):
        extract_member(archive, "inner/x.jsonl", tmp_path / "bad" / "x.jsonl", "0" * 64)
    assert _files(tmp_path / "bad") == []


def test_hub_files_follow_hf_endpoint_hf_home_token_and_hf_hub_offline(tmp_path, mirror, monkeypatch):
    """The LLaMA-2 tokenizer, a gated hub file: fetched from HF_ENDPOINT with the token `huggingface-cli login`
    saved under HF_HOME (checked against its pinned sha256); under HF_HUB_OFFLINE nothing is requested and the
    error says where the file must be instead."""
    path = "meta-llama/Llama-2-13b-chat-hf/resolve/main/tokenizer.model"
    served = tmp_path / "hub"
    (served / path).parent.mkdir(parents=True)
    shutil.copy(mirror / "tokenizers/llama-2/tokenizer.model", served / path)
    (tmp_path / "hf_home").mkdir()
    (tmp_path / "hf_home/token").write_text("hf_saved_by_login\n")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "REPRO_DATA_BASE_URL", "REPRO_DATA_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    tokenizer = ("llama-2-tokenizer", "tokenizers/llama-2/tokenizer.model")
    with MirrorServer(served) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(DataError, match="HF_HUB_OFFLINE is set"):
            DataStore(cache=tmp_path / "cache", retries=1).path(*tokenizer)
        assert hub.requests == []
        monkeypatch.delenv("HF_HUB_OFFLINE")
        got = DataStore(cache=tmp_path / "cache", retries=1).path(*tokenizer)
    assert got.read_bytes() == (mirror / "tokenizers/llama-2/tokenizer.model").read_bytes()
    assert hub.requests == ["/" + path] and hub.authorization == ["Bearer hf_saved_by_login"]


def test_hub_files_are_pinned_to_the_commit_the_hub_first_served(tmp_path, mirror, monkeypatch):
    """The first hub file of a repository is fetched at its branch and the commit the hub names (X-Repo-Commit)
    goes into the lock; the repository's next file is fetched at that commit, not at the branch (which may have
    moved); a lock named by REPRO_HUB_LOCK pins another commit; a malformed lock is an error naming it."""
    repo = "datasets/tatsu-lab/alpaca_eval"
    served = tmp_path / "hub"
    for revision, name in (("main", "alpaca_eval.json"), ("c0ffee", "alpaca_eval_gpt4_baseline.json"),
                           ("feed42", "alpaca_eval.json")):
        (served / repo / "resolve" / revision).mkdir(parents=True, exist_ok=True)
        shutil.copy(mirror / "alpaca_eval" / name, served / repo / "resolve" / revision / name)
    for name in ("REPRO_DATA_BASE_URL", "REPRO_DATA_MIRROR", "REPRO_HUB_LOCK", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with MirrorServer(served) as hub:
        hub.headers["X-Repo-Commit"] = "c0ffee"
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        store = DataStore(cache=tmp_path / "cache", retries=1)
        store.path("alpaca-eval", "alpaca_eval/alpaca_eval.json")
        assert store.hub_lock() == {repo: "c0ffee"}
        store.path("alpaca-eval", "alpaca_eval/alpaca_eval_gpt4_baseline.json")
        assert hub.requests == [f"/{repo}/resolve/main/alpaca_eval.json",
                                f"/{repo}/resolve/c0ffee/alpaca_eval_gpt4_baseline.json"]

        shared_lock = tmp_path / "lock.json"
        shared_lock.write_text(f'{{"{repo}": "feed42"}}')
        monkeypatch.setenv("REPRO_HUB_LOCK", str(shared_lock))
        DataStore(cache=tmp_path / "other-cache", retries=1).path("alpaca-eval", "alpaca_eval/alpaca_eval.json")
        assert hub.requests[-1] == f"/{repo}/resolve/feed42/alpaca_eval.json"
        assert json.loads(shared_lock.read_text()) == {repo: "feed42"}  # a pinned repository is not re-pinned

        shared_lock.write_text('["c0ffee"]')
        with pytest.raises(DataError, match="lock.json.*JSON object"):
            DataStore(cache=tmp_path / "third", retries=1).path("alpaca-eval", "alpaca_eval/alpaca_eval.json")
