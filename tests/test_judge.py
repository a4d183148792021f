"""Judges: the Figure 8 / Figure 9 prompts, the OpenAI-compatible path against a real local server that fails
(429, 500, a dropped connection, killed and restarted), the disk cache, and local judges on the tiny model."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from repro.config import config_from_dict
from repro.data.templates import ANNOTATION_SYSTEM
from repro.io import read_jsonl, write_jsonl
from repro.judge.cache import JudgmentCache
from repro.judge.openai_api import JudgeAPIError
from repro.judge.prompts import ai_judge_prompt, ai_judge_target, annotation_messages, is_positive, read_ai_judge
from repro.judge.run import judge_file


def test_figure8_messages_and_verdict():
    messages = annotation_messages("Add the numbers.", "2 and 3", "5")
    assert messages[0] == {"role": "system", "content": ANNOTATION_SYSTEM}
    assert messages[1]["content"] == "### Instruction: Add the numbers.\n2 and 3\n\n### Response: 5"
    assert is_positive("Perfect.") and is_positive("  perfect") and is_positive("Perfect! Nothing to add.")
    assert not is_positive("The response is not perfect.") and not is_positive("")


def test_figure9_prompt_target_and_decision():
    prompt = ai_judge_prompt("Name a colour.", "", "Blue")
    assert prompt.endswith("### Instruction: Name a colour.\n\n### Response: Blue\n\n### Judgment: ")
    assert prompt.startswith("Below is an instruction-response pair.")
    assert ai_judge_target(None) == "Perfect. Yes."
    assert ai_judge_target("Too short.") == "Too short. No."
    assert read_ai_judge("Perfect. Yes.") == (True, "Perfect.", True)
    assert read_ai_judge("It misses the point. No.") == (False, "It misses the point.", True)
    assert read_ai_judge("rambling without a decision") == (False, "rambling without a decision", False)


def test_cache_survives_a_torn_last_line(tmp_path):
    cache = JudgmentCache(tmp_path / "c.jsonl")
    cache.put({"key": "a", "text": "Perfect."})
    with open(tmp_path / "c.jsonl", "a") as handle:
        handle.write('{"key": "b", "te')  # a crash mid-write
    again = JudgmentCache(tmp_path / "c.jsonl")
    assert set(again.entries) == {"a"}
    again.put({"key": "b", "text": "Wrong."})
    assert set(JudgmentCache(tmp_path / "c.jsonl").entries) == {"a", "b"}


# ------------------------------------------------------------------ an OpenAI-compatible server that misbehaves

class FlakyChatServer:
    """Speaks /chat/completions. A stand-in for GPT-4: 'Perfect.' when the response contains 'good', else a
    critique. Faults are injected per prompt: a 429, a 500, a dropped connection; `answered` counts the prompts
    it answered with a 200 (what a paid API would bill)."""

    def __init__(self, faults: dict[str, list[str]] | None = None, port: int = 0):
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.answered: Counter[str] = Counter()
        self.answered_after_restart = 0
        self.starts = 0
        self.requests = 0
        self.refused_at: list[float] = []
        self.answered_at: list[float] = []
        self.lock = threading.Lock()
        self.port = port
        self.start()

    def start(self):
        server = self
        self.starts += 1

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["messages"][1]["content"]
                with server.lock:
                    server.requests += 1
                    fault = next((f for key, fs in server.faults.items() if key in user and fs for f in [fs.pop(0)]),
                                 None)
                if fault == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all
                    return
                if fault and fault.split(":")[0] in ("429", "500"):  # 429:<Retry-After value>
                    self.send_response(int(fault.split(":")[0]))
                    if fault.startswith("429"):
                        self.send_header("Retry-After", fault.partition(":")[2] or "0")
                    self.end_headers()
                    with server.lock:
                        server.refused_at.append(time.monotonic())
                    return
                if fault == "401":  # a proxy that echoes the request's headers into its error
                    self.send_response(401)
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": "unauthorized", "request_headers": {
                        "Authorization": self.headers.get("Authorization"),
                        "api-key": self.headers.get("Authorization", "").split()[-1]}}).encode())
                    return
                if fault == "401-padded":  # the key straddling the 200-character cut of an error body
                    self.send_response(401)
                    self.end_headers()
                    self.wfile.write(("x" * 190 + self.headers.get("Authorization", "").split()[-1]).encode())
                    return
                if fault == "400":
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(b'{"error": "bad request"}')
                    return
                assert body["temperature"] == 0.0 and body["messages"][0]["content"] == ANNOTATION_SYSTEM
                text = "Perfect." if "good" in user.split("### Response:")[1] else "The response is wrong: " + user[-8:]
                usage = {"prompt_tokens": 100, "completion_tokens": None if fault == "null-usage" else 10}
                content = {"content-null": None, "content-number": 42}.get(fault, text)
                payload = json.dumps({"model": body["model"] + "-0613", "choices": [{"message": {"content": content}}],
                                      "usage": usage}).encode()
                time.sleep(0.8 if fault == "slow" else 0.02)  # latency: a restart or a signal lands mid-run
                with server.lock:
                    server.answered_at.append(time.monotonic())
                    server.answered[user] += 1
                    server.answered_after_restart += server.starts > 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _config(port: int, concurrency: int = 3, retries: int = 8) -> object:
    return config_from_dict({"profile": "t", "models": {"m": {"source": "tiny"}}, "judges": {"gpt-4": {
        "kind": "openai", "model": "gpt-4", "base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": "REPRO_TEST_KEY",
        "max_concurrency": concurrency, "max_retries": retries, "timeout_s": 10.0,
        "usd_per_1m_input_tokens": 30.0, "usd_per_1m_output_tokens": 60.0}}})


def _responses(n: int) -> list[dict]:
    return [{"id": i, "instruction": f"Task number {i}.", "input": "", "output": "a good answer" if i % 3 == 0
             else f"a poor answer {i}"} for i in range(n)]


def test_openai_judge_with_faults_and_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_TEST_KEY", "sk-test-not-a-secret")
    rows = _responses(12)
    write_jsonl(tmp_path / "in.jsonl", rows)
    faults = {"Task number 1.": ["429"], "Task number 2.": ["500", "500"], "Task number 4.": ["drop"]}
    server = FlakyChatServer(faults)

    def kill_and_restart():  # once a few prompts are answered, the server goes away for a while, then comes back
        while sum(server.answered.values()) < 4:
            time.sleep(0.01)
        server.stop()
        time.sleep(0.5)
        server.start()

    restarter = threading.Thread(target=kill_and_restart)
    restarter.start()
    summary = judge_file("gpt-4", _config(server.port), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                         tmp_path / "cache.jsonl")
    restarter.join()
    server.stop()

    judged = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in judged] == list(range(12))  # every instruction, in order, once
    assert all(count == 1 for count in server.answered.values()) and len(server.answered) == 12  # billed once each
    assert [r["positive"] for r in judged] == [i % 3 == 0 for i in range(12)]
    assert all((r["judgment"] is None) == r["positive"] and r["judgment_raw"] for r in judged)
    assert summary["calls_now"] == 12 and summary["from_cache"] == 0
    assert server.starts == 2 and server.answered_after_restart > 0  # the outage really fell inside the run
    assert summary["usd_total"] == pytest.approx(12 * (100 * 30 + 10 * 60) / 1e6)
    cache_text = (tmp_path / "cache.jsonl").read_text()
    assert "sk-test" not in cache_text and "sk-test" not in (tmp_path / "out.jsonl").read_text()
    assert all(json.loads(line)["model"] == "gpt-4-0613" for line in cache_text.splitlines())

    # a rerun asks nothing: every judgment comes from the cache, even with the server gone
    again = judge_file("gpt-4", _config(1), tmp_path / "in.jsonl", tmp_path / "again.jsonl", tmp_path / "cache.jsonl")
    assert again["calls_now"] == 0 and read_jsonl(tmp_path / "again.jsonl") == judged


def test_a_crash_loses_no_paid_call(tmp_path, monkeypatch):
    """A permanent error stops the run; what was answered is on disk, and the rerun only asks for the rest."""
    monkeypatch.setenv("REPRO_TEST_KEY", "k")
    write_jsonl(tmp_path / "in.jsonl", _responses(6))
    server = FlakyChatServer({"Task number 3.": ["400"]})
    with pytest.raises(JudgeAPIError, match="HTTP 400"):
        judge_file("gpt-4", _config(server.port, concurrency=1), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                   tmp_path / "cache.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    first = sum(server.answered.values())
    assert first == 5  # the others were answered (in-flight work finishes) and cached
    summary = judge_file("gpt-4", _config(server.port, concurrency=1), tmp_path / "in.jsonl",
                         tmp_path / "out.jsonl", tmp_path / "cache.jsonl")
    server.stop()
    assert summary["calls_now"] == 1 and summary["from_cache"] == 5
    assert all(count == 1 for count in server.answered.values()) and len(server.answered) == 6


def test_retries_run_out_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_TEST_KEY", "k")
    write_jsonl(tmp_path / "in.jsonl", _responses(1))
    server = FlakyChatServer({"Task number 0.": ["500"] * 5})
    with pytest.raises(JudgeAPIError, match="gave up after 3 attempts; last: HTTP 500"):
        judge_file("gpt-4", _config(server.port, retries=2), tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    server.stop()
    assert server.requests == 3


def test_bad_input_names_the_line(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"instruction": "x", "output": "y"}, {"instruction": "", "output": "z"}])
    with pytest.raises(Exception, match=r"in.jsonl.*line 1.*instruction"):
        judge_file("gpt-4", _config(1), tmp_path / "in.jsonl", tmp_path / "out.jsonl")


# ------------------------------------------------------------------ local judges on the tiny model

def test_local_and_ai_judges_on_the_tiny_model(tmp_path, tiny_model_dir, tiny_adapter_dir):
    from repro.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"profile": "t", "models": {"tiny": {"source": "tiny"}},
                                  "experiments": {"judge": {"base_model": "tiny", "dataset": "cut-iter1"}},
                                  "generation": {"backend": "transformers", "batch_size": 4},
                                  "judges": {"local": {"kind": "local", "model": "tiny", "max_tokens": 6},
                                             "ai": {"kind": "ai_judge", "model": "tiny", "adapter_experiment": "judge",
                                                    "max_tokens": 6}}}))
    write_jsonl(tmp_path / "in.jsonl", _responses(3))
    for judge, extra in (("local", []), ("ai", ["--adapter", str(tiny_adapter_dir)])):
        out = tmp_path / f"{judge}.jsonl"
        args = ["judge", "--config", str(config), "--judge", judge, "--inputs", str(tmp_path / "in.jsonl"),
                "--out", str(out), "--model", str(tiny_model_dir), *extra]
        assert main(args) == 0
        judged = read_jsonl(out)
        assert len(judged) == 3 and all(r["judge"] == judge and "judgment_raw" in r for r in judged)
        meta = json.loads(out.with_name(f"{judge}.meta.json").read_text())
        assert meta["calls_now"] == 3 and meta["paper_judge"] is False
        assert main(args) == 0  # a rerun is served from the cache
        assert json.loads(out.with_name(f"{judge}.meta.json").read_text())["calls_now"] == 0
        assert read_jsonl(out) == judged
    # an AI judge without its adapter is refused by name
    assert main(["judge", "--config", str(config), "--judge", "ai", "--inputs", str(tmp_path / "in.jsonl"),
                 "--out", str(tmp_path / "x.jsonl"), "--model", str(tiny_model_dir)]) == 2


def test_the_real_api_needs_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = config_from_dict({"profile": "t", "models": {}, "judges": {"gpt-4": {"kind": "openai", "model": "gpt-4"}}})
    write_jsonl(tmp_path / "in.jsonl", _responses(1))
    with pytest.raises(JudgeAPIError, match="set OPENAI_API_KEY"):
        judge_file("gpt-4", config, tmp_path / "in.jsonl", tmp_path / "out.jsonl")


# ------------------------------------------------------------------ errors that will not heal stop the run early

def _everyone(fault: str, n: int) -> dict:
    return {f"Task number {i}.": [fault] * 50 for i in range(n)}


def test_an_authentication_error_stops_the_run_at_once_and_hides_the_key(tmp_path, monkeypatch):
    """A 401 is not per item: the run stops with nothing more sent (only calls already in flight), and the key the
    proxy echoed back is not in the message."""
    monkeypatch.setenv("REPRO_TEST_KEY", "sk-live-0123456789abcdef")
    write_jsonl(tmp_path / "in.jsonl", _responses(40))
    server = FlakyChatServer(_everyone("401", 40))
    with pytest.raises(JudgeAPIError) as caught:
        judge_file("gpt-4", _config(server.port, concurrency=4), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                   tmp_path / "cache.jsonl")
    server.stop()
    message = str(caught.value)
    assert server.requests <= 4  # the four in flight when the first 401 came back; before: all 40
    assert "HTTP 401" in message and "refused" in message and "paid for 0 judgments and kept 0" in message
    assert "0123456789abcdef" not in message and "[redacted]" in message


def test_a_server_that_never_heals_stops_after_the_consecutive_failure_limit(tmp_path, monkeypatch):
    """500 forever: 3 items use up their retries, then nothing more is sent (before: every item's retries)."""
    monkeypatch.setenv("REPRO_TEST_KEY", "k")
    write_jsonl(tmp_path / "in.jsonl", _responses(12))
    server = FlakyChatServer(_everyone("500", 12))
    with pytest.raises(JudgeAPIError, match="3 calls in a row failed after their retries.*HTTP 500.*paid for 0"):
        judge_file("gpt-4", _config(server.port, concurrency=1, retries=2), tmp_path / "in.jsonl",
                   tmp_path / "out.jsonl", tmp_path / "cache.jsonl")
    server.stop()
    assert server.requests == 3 * 3  # 3 items x 3 attempts, not 12 x 3


def test_one_bad_item_among_good_ones_does_not_stop_the_others(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_TEST_KEY", "k")
    write_jsonl(tmp_path / "in.jsonl", _responses(8))
    server = FlakyChatServer({"Task number 2.": ["500"] * 50, "Task number 5.": ["500"] * 50})
    with pytest.raises(JudgeAPIError, match="2 of 8 calls failed.*paid for 6 judgments and kept 6"):
        judge_file("gpt-4", _config(server.port, concurrency=1, retries=1), tmp_path / "in.jsonl",
                   tmp_path / "out.jsonl", tmp_path / "cache.jsonl")
    server.stop()
    assert len(server.answered) == 6 and len(JudgmentCache(tmp_path / "cache.jsonl").entries) == 6


def test_an_unwritable_cache_stops_before_anything_is_paid(tmp_path, monkeypatch):
    """The cache is opened for writing before the first call: a place no one can write (here under /proc, which
    refuses root too) ends the run with nothing sent."""
    monkeypatch.setenv("REPRO_TEST_KEY", "k")
    write_jsonl(tmp_path / "in.jsonl", _responses(5))
    server = FlakyChatServer()
    with pytest.raises(OSError):
        judge_file("gpt-4", _config(server.port), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                   "/proc/self/judgments/cache.jsonl")
    server.stop()
    assert server.requests == 0


def test_a_full_disk_mid_run_stops_the_judge_and_pays_nothing_it_cannot_keep(tmp_path):
    """The judge process may write only ~3 KB (RLIMIT_FSIZE: the kernel's 'file too large', as a full disk's
    'no space left', fails the write): it stops at the first judgment it cannot cache, paid minus kept is at most
    the calls in flight, the error is one line, and the rerun pays only for what was not kept."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    write_jsonl(tmp_path / "in.jsonl", _responses(40))
    server = FlakyChatServer()
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"profile": "t", "models": {}, "judges": {"gpt-4": {
        "kind": "openai", "model": "gpt-4", "base_url": f"http://127.0.0.1:{server.port}/v1",
        "api_key_env": "REPRO_TEST_KEY", "max_concurrency": 2}}}))
    args = [sys.executable, "-m", "repro.cli", "judge", "--config", str(config), "--judge", "gpt-4", "--inputs",
            str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"), "--cache", str(tmp_path / "c.jsonl")]
    env = {**os.environ, "REPRO_TEST_KEY": "k", "PYTHONDONTWRITEBYTECODE": "1"}

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    first = subprocess.run(args, capture_output=True, text=True, env=env, preexec_fn=small_disk)
    paid = sum(server.answered.values())
    kept = len(JudgmentCache(tmp_path / "c.jsonl").entries)
    assert first.returncode == 2 and first.stderr.count("\n") == 1 and "Traceback" not in first.stderr
    assert "cannot be written" in first.stderr and f"paid for {paid} judgments and kept {kept}" in first.stderr
    assert 0 < kept < paid <= kept + 2 < 40  # before: all 40 paid
    second = subprocess.run(args, capture_output=True, text=True, env=env)
    server.stop()
    assert second.returncode == 0, second.stderr
    assert sum(server.answered.values()) - paid == 40 - kept  # the rerun pays only for what was not kept


def test_an_answer_without_token_counts_is_kept_with_its_cost_unknown(tmp_path, monkeypatch):
    """`usage.completion_tokens: null` used to crash after the call was paid: 40 paid, 0 kept, 39 bought again."""
    monkeypatch.setenv("REPRO_TEST_KEY", "sk-test-not-a-secret")
    write_jsonl(tmp_path / "in.jsonl", _responses(12))
    server = FlakyChatServer({f"Task number {i}.": ["null-usage"] for i in range(12)})
    summary = judge_file("gpt-4", _config(server.port), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                         tmp_path / "cache.jsonl")
    assert summary["calls_now"] == 12 and summary["calls_with_unknown_cost"] == 12 and summary["usd_total"] == 0
    again = judge_file("gpt-4", _config(server.port), tmp_path / "in.jsonl", tmp_path / "again.jsonl",
                       tmp_path / "cache.jsonl")
    server.stop()
    assert again["calls_now"] == 0 and sum(server.answered.values()) == 12  # nothing bought twice


@pytest.mark.parametrize("fault", ["content-null", "content-number"])
def test_an_answer_that_is_not_text_is_paid_once_kept_and_named(tmp_path, monkeypatch, fault):
    """A content of null used to become an empty negative judgment (exit 0); a number was cached and then crashed
    every rerun. Now it is recorded as paid, the run stops naming the item, a rerun buys nothing, and only
    --retry-unusable asks again."""
    monkeypatch.setenv("REPRO_TEST_KEY", "sk-test-not-a-secret")
    write_jsonl(tmp_path / "in.jsonl", _responses(6))
    server = FlakyChatServer({"Task number 4.": [fault]})
    args = ("gpt-4", _config(server.port), tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "cache.jsonl")
    for _ in range(2):
        with pytest.raises(JudgeAPIError, match=r"1 judgments were paid for but cannot be used .*items 4"):
            judge_file(*args)
    assert sum(server.answered.values()) == 6 and not (tmp_path / "out.jsonl").exists()
    summary = judge_file(*args, retry_unusable=True)  # the server answers properly now
    server.stop()
    assert summary["calls_now"] == 1 and sum(server.answered.values()) == 7


def test_a_key_is_redacted_in_every_form_a_server_echoes(tmp_path, monkeypatch):
    """A key with a quote and a backslash, echoed JSON-escaped; a key straddling the 200-character cut."""
    from repro.judge.openai_api import redact

    key = 'sk-"odd\\key-0123456789'
    echoed = json.dumps({"Authorization": f"Bearer {key}"})
    from urllib.parse import quote

    assert "0123456789" not in redact(echoed, (key,)) and "0123456789" not in redact(quote(key, safe=""), (key,))
    monkeypatch.setenv("REPRO_TEST_KEY", "sk-live-0123456789abcdef")
    write_jsonl(tmp_path / "in.jsonl", _responses(3))
    server = FlakyChatServer(_everyone("401-padded", 3))
    with pytest.raises(JudgeAPIError) as caught:
        judge_file("gpt-4", _config(server.port, concurrency=1), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                   tmp_path / "cache.jsonl")
    server.stop()
    assert "sk-live" not in str(caught.value) and "[redacted]" in str(caught.value)


@pytest.mark.parametrize("hint, least, most", [("2", 2.0, 3.5), ("nan", 0.3, 1.5), ("-5", 0.3, 1.5)])
def test_a_retry_after_hint_is_honoured_when_it_is_a_sane_number(tmp_path, monkeypatch, hint, least, most):
    """A 429 saying Retry-After: 2 is retried 2 s later; a hint that is not a finite number >= 0 falls back to the
    SDK's backoff (0.5 s, less up to 25% jitter) instead of a crash or a wait without end."""
    monkeypatch.setenv("REPRO_TEST_KEY", "k")
    write_jsonl(tmp_path / "in.jsonl", _responses(1))
    server = FlakyChatServer({"Task number 0.": [f"429:{hint}"]})
    summary = judge_file("gpt-4", _config(server.port, concurrency=1, retries=2), tmp_path / "in.jsonl",
                         tmp_path / "out.jsonl")
    server.stop()
    waited = server.answered_at[0] - server.refused_at[0]
    assert summary["calls_now"] == 1 and least <= waited <= most, waited


def test_the_judge_honours_openai_base_url_when_the_config_names_no_endpoint(tmp_path, monkeypatch):
    """OPENAI_BASE_URL, which the openai SDK and alpaca_eval read, reaches the judge; a config's base_url wins."""
    monkeypatch.setenv("REPRO_TEST_KEY", "k")
    write_jsonl(tmp_path / "in.jsonl", _responses(2))
    server = FlakyChatServer()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.port}/v1")
    config = config_from_dict({"profile": "t", "models": {}, "judges": {"gpt-4": {
        "kind": "openai", "model": "gpt-4", "api_key_env": "REPRO_TEST_KEY", "max_retries": 0}}})
    summary = judge_file("gpt-4", config, tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    assert summary["calls_now"] == 2 and sum(server.answered.values()) == 2
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")  # nothing listens there
    summary = judge_file("gpt-4", _config(server.port), tmp_path / "in.jsonl", tmp_path / "again.jsonl")
    server.stop()
    assert summary["calls_now"] == 2 and sum(server.answered.values()) == 4


def test_sigterm_stops_sending_and_keeps_every_answer_in_flight(tmp_path):
    """SIGTERM used to kill the judge with answers in flight: paid, never cached, bought again. Now it stops
    sending, waits for the calls in flight, caches them, and says what was paid and kept."""
    import signal
    import subprocess
    import sys

    import yaml

    write_jsonl(tmp_path / "in.jsonl", _responses(16))
    server = FlakyChatServer({f"Task number {i}.": ["slow"] for i in range(16)})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"profile": "t", "models": {"m": {"source": "tiny"}}, "judges": {"gpt-4": {
        "kind": "openai", "model": "gpt-4", "base_url": f"http://127.0.0.1:{server.port}/v1",
        "api_key_env": "REPRO_TEST_KEY", "max_concurrency": 4, "timeout_s": 10.0}}}))
    cache = tmp_path / "cache.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "repro.cli", "judge", "--config", str(config), "--judge", "gpt-4",
                                "--inputs", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"), "--cache",
                                str(cache)], env={**os.environ, "REPRO_TEST_KEY": "sk-test"}, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.time() + 60
    while server.requests < 4 and time.time() < deadline:  # the first calls are in flight
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=60)[1]
    server.stop()
    kept = len(cache.read_text().splitlines())
    assert process.returncode != 0 and "SIGTERM received" in err, err
    assert kept == sum(server.answered.values()) >= 4 and kept < 16  # every paid answer kept, nothing more sent
    assert f"kept {kept}" in err
