"""Evaluation: win rates from the stored GPT-4 annotations, alpaca_eval's own GPT-4 path offline (seeded cache)
and against a local OpenAI-protocol server with faults, a local judge end to end, lm-eval, ROUGE."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from repro.evaluate.rouge import rouge
from repro.evaluate.winrate import winrate

from helpers import linked_mirror

ROOT = Path(__file__).resolve().parent.parent
STORED = {"llama-2-13b-chat-hf": 81.09, "cut-13b": 91.36}


def _annotations(mirror, model):
    return json.loads((mirror / f"alpaca_eval/results/{model}/alpaca_eval_gpt4/annotations.json").read_text())


@pytest.mark.parametrize("model", STORED)
def test_winrate_of_the_stored_gpt4_annotations(mirror, model):
    result = subprocess.run([sys.executable, "-m", "repro.cli", "evaluate", "winrate",
                             str(mirror / f"alpaca_eval/results/{model}/alpaca_eval_gpt4/annotations.json")],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    scores = json.loads(result.stdout)
    assert round(scores["win_rate"], 2) == STORED[model]
    assert scores["n"] == 804 and scores["missing"] == 1
    assert scores["wins"] + scores["losses"] + scores["ties"] == 804


@pytest.mark.parametrize("model", STORED)
def test_winrate_agrees_with_alpaca_eval(mirror, model):
    from alpaca_eval.metrics import get_winrate

    ours, theirs = winrate(_annotations(mirror, model)), get_winrate(_annotations(mirror, model))
    assert ours["win_rate"] == pytest.approx(theirs["win_rate"], abs=1e-9)
    assert ours["standard_error"] == pytest.approx(theirs["standard_error"], abs=1e-9)
    assert (ours["wins"], ours["losses"], ours["ties"]) == (theirs["n_wins"], theirs["n_wins_base"], theirs["n_draws"])
    synthetic = [{"preference": p} for p in (1, 2, 2, 0, 1.5, 1.25, None)]
    assert winrate(synthetic)["win_rate"] == pytest.approx(get_winrate(synthetic)["win_rate"])


class CountingOpenAIServer:
    """Speaks OpenAI's chat-completions protocol on 127.0.0.1 as a deterministic stand-in for GPT-4 (a paid
    service that cannot run here): it ranks the longer answer first; asked for log-probabilities (AlpacaEval 2.0's
    weighted annotator, GPT-4 Turbo) it gives the first-listed answer probability 0.8 when it is the longer one,
    else 0.3. `faults` maps a request number to 'error'
    (HTTP 500), 'rate' (HTTP 429) or 'slow' (answers after 2 s)."""

    def __init__(self, faults=None):
        self.faults, self.requests, self.successes = faults or {}, 0, Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with threading.Lock():
                    server.requests += 1
                    number = server.requests
                fault = server.faults.get(number)
                if fault in ("error", "rate"):
                    self.send_response(500 if fault == "error" else 429)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": f"injected {fault}", "type": fault}}).encode())
                    return
                if fault == "slow":
                    time.sleep(2)
                prompt = "\n".join(m["content"] for m in body["messages"])
                if body.get("logprobs"):
                    self._weighted(body, prompt, number)
                    return
                answers = prompt.split('"answer": """')[1:]
                first, second = (a.split('"""')[0] for a in answers[-2:])
                rank1 = 1 if len(first) >= len(second) else 2
                text = str([{"model": "model_1", "rank": 1 if rank1 == 1 else 2},
                            {"model": "model_2", "rank": 2 if rank1 == 1 else 1}])
                server.successes[prompt] += 1
                payload = {"id": f"c{number}", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
                self._send(payload)

            def _weighted(self, body, prompt, number):
                first, second = (a.split('"""')[0] for a in prompt.split('"output": """')[1:3])
                p = 0.8 if len(first) > len(second) else 0.3
                top = [{"token": "m", "logprob": math.log(p), "bytes": [109]},
                       {"token": "M", "logprob": math.log(1 - p), "bytes": [77]}]
                token = "m" if p > 0.5 else "M"
                server.successes[prompt] += 1
                self._send({"id": f"c{number}", "object": "chat.completion", "created": 0, "model": body["model"],
                            "choices": [{"index": 0, "finish_reason": "length",
                                         "message": {"role": "assistant", "content": token},
                                         "logprobs": {"content": [{"token": token, "logprob": top[0 if p > 0.5 else 1]
                                                                   ["logprob"], "bytes": [ord(token)],
                                                                   "top_logprobs": top}]}}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}})

            def _send(self, payload):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _alpaca_eval_cli(args, server_url, mirror, key="sk-test-not-a-real-key"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env.update(REPRO_DATA_MIRROR=str(mirror), OPENAI_API_BASE=server_url, OPENAI_MAX_RETRIES="2")
    if key:
        env["OPENAI_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "repro.cli", "evaluate", "alpaca-eval", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def test_paper_evaluator_offline_from_the_seeded_cache(mirror, tmp_path):
    """alpaca_eval's own `alpaca_eval_gpt4` configuration on the stored cut-13b outputs gives 91.36 with the cache
    seeded from the stored GPT-4 annotations, and the judge server sees no request at all."""
    server = CountingOpenAIServer()
    try:
        stored = mirror / "alpaca_eval/results/cut-13b"
        result = _alpaca_eval_cli(["--model-outputs", str(stored / "model_outputs.json"), "--out",
                                   str(tmp_path / "scores.json"), "--cache", str(tmp_path / "cache"),
                                   "--cache-seed", str(stored / "alpaca_eval_gpt4/annotations.json"),
                                   "--only-cached"], server.url, mirror)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert round(scores["win_rate"], 2) == 91.36 and round(scores["alpaca_eval_win_rate"], 2) == 91.36
    assert scores["n"] == 804 and scores["left_out_uncached"] == 1  # the pair GPT-4 never annotated
    assert scores["comparable_with_paper"] is True and scores["judge_model"] == "gpt-4"
    assert server.requests == 0


def test_openai_decoder_against_a_local_server_with_faults(mirror, tmp_path):
    outputs = json.loads((mirror / "alpaca_eval/results/llama-2-13b-chat-hf/model_outputs.json").read_text())[:5]
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    stored = json.loads((mirror / "alpaca_eval/alpaca_eval.json").read_text())
    reference = {r["instruction"]: r["output"] for r in stored}
    args = ["--model-outputs", str(tmp_path / "outputs.json"), "--out", str(tmp_path / "scores.json"), "--cache",
            str(tmp_path / "cache")]
    server = CountingOpenAIServer(faults={1: "error", 3: "rate", 5: "slow"})
    try:
        result = _alpaca_eval_cli(args, server.url, mirror)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "sk-test-not-a-real-key" not in result.stdout + result.stderr
        scores = json.loads((tmp_path / "scores.json").read_text())
        assert (scores["n"], scores["missing"]) == (5, 0)  # nothing lost ...
        assert sorted(server.successes.values()) == [1] * 5  # ... nor asked twice
        assert server.requests == 7  # 5 answers + the error and the rate limit, retried
        annotations = json.loads((tmp_path / "scores.annotations.json").read_text())
        expected = [2.0 if len(o["output"]) > len(reference[o["instruction"]]) else 1.0 for o in outputs]
        by_instruction = {a["instruction"]: a["preference"] for a in annotations}
        assert [by_instruction[o["instruction"]] for o in outputs] == expected
        assert "sk-test" not in (tmp_path / "scores.json").read_text() + json.dumps(annotations)
        before = server.requests
        again = _alpaca_eval_cli(args[:3] + [str(tmp_path / "again.json")] + args[4:], server.url, mirror)
        assert again.returncode == 0 and server.requests == before  # the cache pays once
    finally:
        server.close()


def test_local_judge_end_to_end(tiny_model_dir, store, tmp_path):
    """generation -> annotation by a local judge -> win rate, all through alpaca_eval; labelled not comparable."""
    from repro.evaluate.alpaca_eval_run import evaluate_alpaca_eval
    from repro.generate.run import run_generation
    from repro.generate.spec import Decoding, GenerationSpec

    outputs = tmp_path / "alpaca_eval.json"
    run_generation(GenerationSpec(model=str(tiny_model_dir), generator="tiny", decoding=Decoding(max_new_tokens=8)),
                   "alpaca_eval", outputs, limit=4, store=store, progress=False)
    reference = store.path("alpaca-eval", "alpaca_eval/alpaca_eval.json")
    scores = evaluate_alpaca_eval(outputs, reference, tmp_path / "scores.json", tmp_path / "cache",
                                  annotator="local_pairwise", judge_model=str(tiny_model_dir))
    assert (scores["n"], scores["missing"]) == (4, 0) and 0 <= scores["win_rate"] <= 100
    assert scores["local_judge"] is True and scores["comparable_with_paper"] is False
    assert scores["judge_model"] == str(tiny_model_dir)
    # a rerun is served from the cache: the judge is never loaded (its model path may even be gone)
    again = evaluate_alpaca_eval(outputs, reference, tmp_path / "again.json", tmp_path / "cache",
                                 annotator="local_pairwise", judge_model=str(tmp_path / "no-such-model"))
    assert again["win_rate"] == scores["win_rate"]


@pytest.mark.slow
def test_lm_eval_runs_the_four_pinned_tasks_on_the_tiny_model(tiny_model_dir, store, tmp_path):
    from repro.evaluate.lm_eval_run import run_lm_eval, write_eval_data

    data = write_eval_data(store, tmp_path)
    shots = {"arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0}
    payload = run_lm_eval(str(tiny_model_dir), tmp_path / "scores.json", data, shots, limit=2, batch_size=4)
    scores = payload["scores"]
    assert set(scores) == {"arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "avg"}
    assert all(0 <= v <= 100 for v in scores.values())
    assert scores["avg"] == pytest.approx(sum(scores[t] for t in shots) / 4)
    assert payload["n_shot"]["repro_arc_challenge"] == 25 and payload["n_shot"]["repro_hellaswag"] == 10
    assert payload["n_shot"]["repro_mmlu_anatomy"] == 5 and payload["n_shot"]["repro_truthfulqa_mc2"] == 0
    mmlu_tasks = [k for k in payload["n_samples"] if k.startswith("repro_mmlu_")]
    assert len(mmlu_tasks) == 57 and all(payload["n_samples"][k]["effective"] == 2 for k in mmlu_tasks)
    assert payload["n_samples"]["repro_arc_challenge"]["original"] == 1172
    assert "validation" in payload["fewshot_source"]["hellaswag"]
    assert len(payload["task_files_sha256"]) == 4 + 57 and set(payload["data_sha256"]) == set(data)
    # lm-eval's own outputs are kept: its results file and per-sample logs, from which the standard error follows
    outputs = Path(payload["lm_eval_outputs"])
    assert len(list(outputs.rglob("results_*.json"))) == 1
    arc_samples = [json.loads(line) for path in outputs.rglob("samples_repro_arc_challenge_*.jsonl")
                   for line in path.read_text().splitlines()]
    accuracies = [float(sample["acc"]) for sample in arc_samples]
    assert len(accuracies) == 2 and scores["arc_challenge"] == pytest.approx(100 * sum(accuracies) / 2)
    mean = sum(accuracies) / 2
    by_hand = 100 * (sum((a - mean) ** 2 for a in accuracies) / (2 - 1)) ** 0.5 / 2 ** 0.5  # sample sd / sqrt(n)
    assert payload["stderr"]["arc_challenge"] == pytest.approx(by_hand)
    assert set(payload["stderr"]) == set(shots)


@pytest.mark.slow
def test_a_killed_lm_eval_job_answers_from_its_cache_when_rerun(tiny_model_dir, store, tmp_path):
    """Kill a scoring job once it has cached some answers; the rerun computes only the rest (fewer tokens) and
    gives the scores of an uninterrupted run. Weights written again (a new modification time) get a cache of
    their own: lm-eval keys its cache by the request alone."""
    import signal
    import sqlite3

    from repro.evaluate.lm_eval_run import write_eval_data

    write_eval_data(store, tmp_path / "data")

    def command(out, *extra):
        return [sys.executable, "-m", "repro.cli", "evaluate", "lm-eval", "--model", str(tiny_model_dir),
                "--data", str(tmp_path / "data"), "--tasks", "hellaswag", "--limit", "60", "--batch-size", "1",
                "--out", str(out), *extra]

    whole = subprocess.run(command(tmp_path / "whole.json", "--no-cache"), capture_output=True, text=True, cwd=ROOT)
    assert whole.returncode == 0, whole.stderr[-2000:]
    uninterrupted = json.loads((tmp_path / "whole.json").read_text())

    out = tmp_path / "killed.json"
    job = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    cached = 0
    while job.poll() is None and cached < 20:
        for db in out.parent.glob("killed.cache/*.db"):
            try:
                with sqlite3.connect(db, timeout=0.1) as connection:
                    cached = connection.execute("select count(*) from unnamed").fetchone()[0]
            except sqlite3.Error:
                pass
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL and not out.exists(), "the job ended before it could be killed"

    rerun = subprocess.run(command(out), capture_output=True, text=True, cwd=ROOT)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = json.loads(out.read_text())
    assert resumed["scores"] == uninterrupted["scores"]
    computed = resumed["tokens_computed"]  # the shared-context scorer's count of what it computed
    assert 0 < computed["requests"] < uninterrupted["tokens_computed"]["requests"]
    assert 0 < computed["shared"] < uninterrupted["tokens_computed"]["shared"]
    again = subprocess.run(command(out), capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0 and json.loads(out.read_text())["tokens_computed"]["requests"] == 0
    weights = tiny_model_dir / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1))
    retrained = subprocess.run(command(out), capture_output=True, text=True, cwd=ROOT)
    assert retrained.returncode == 0
    assert json.loads(out.read_text())["tokens_computed"] == uninterrupted["tokens_computed"]


def test_rouge_against_values_worked_out_by_hand():
    s = rouge(["the cat sat on the mat"], ["the cat is on the mat"], use_stemmer=False)
    # unigrams: 5 of 6 match both ways -> F 5/6; bigrams "the cat", "on the", "the mat": 3 of 5 -> 3/5;
    # longest common subsequence "the cat on the mat": 5 of 6 -> 5/6
    assert s["rouge1"] == pytest.approx(100 * 5 / 6) and s["rouge2"] == pytest.approx(60.0)
    assert s["rougeL"] == pytest.approx(100 * 5 / 6) and s["rougeLsum"] == pytest.approx(100 * 5 / 6)
    # stemming: "running dogs" vs "run dog" match only when stemmed
    assert rouge(["running dogs"], ["run dog"], use_stemmer=True)["rouge1"] == pytest.approx(100.0)
    assert rouge(["running dogs"], ["run dog"], use_stemmer=False)["rouge1"] == 0.0
    # averaged over examples: (100 + 0) / 2
    assert rouge(["a b", "c"], ["a b", "d"], use_stemmer=False)["rouge1"] == pytest.approx(50.0)
    # rougeLsum treats newlines as sentence breaks: two sentences in swapped order keep full summary-level LCS
    assert rouge(["b c\na x"], ["a x\nb c"], use_stemmer=False)["rougeLsum"] == pytest.approx(100.0)


def test_rouge_cli_records_its_settings(tmp_path):
    preds, refs = tmp_path / "gen.jsonl", tmp_path / "ref.jsonl"
    preds.write_text(json.dumps({"id": 0, "instruction": "P\nQ", "output": "the cat sat on the mat"}) + "\n")
    refs.write_text(json.dumps({"instruction": "P\nQ", "output": "the cat is on the mat", "refinement": "x"}) + "\n")
    result = subprocess.run([sys.executable, "-m", "repro.cli", "evaluate", "rouge", "--predictions", str(preds),
                             "--references", str(refs), "--out", str(tmp_path / "s.json")],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    scores = json.loads(result.stdout)
    assert scores["rouge2"] == pytest.approx(60.0)
    assert (scores["use_stemmer"], scores["reference_field"], scores["n"]) == (True, "output", 1)


def test_lm_eval_gets_the_adapter_and_tensor_parallel_size_its_backend_understands(tmp_path):
    """hf and shared apply a peft adapter and spread a model over GPUs; vllm serves an adapter as a LoRA request
    (its rank rounded up to one vLLM supports) and splits the model with tensor parallelism."""
    from repro.evaluate.lm_eval_run import model_args

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 12}))
    assert model_args("M", str(tmp_path), "hf", tensor_parallel=4) == (
        f"pretrained=M,dtype=auto,peft={tmp_path},parallelize=True")  # a model over several GPUs
    assert model_args("M", str(tmp_path), "shared") == f"pretrained=M,dtype=auto,peft={tmp_path}"
    assert model_args("M", str(tmp_path), "vllm", tensor_parallel=4) == (
        f"pretrained=M,dtype=auto,lora_local_path={tmp_path},max_lora_rank=16,tensor_parallel_size=4")
    assert model_args("M", None, "vllm") == "pretrained=M,dtype=auto"


def test_alpaca_eval_2_length_controlled_through_the_real_client(mirror, tmp_path):
    """AlpacaEval 2.0 LC: alpaca_eval's weighted GPT-4 Turbo annotator, through its OpenAI client, against the
    local server; the win rate is the mean of the weighted preferences, the LC win rate comes from alpaca_eval's
    length-controlled fit, and a table with the 2.0 column enabled shows it.

    The fit reads alpaca_eval's df_gamed.csv (per-instruction difficulties and two "gamed" baselines, on the HF hub,
    not in the development mirror): the mirror here gets a stand-in with the same columns (difficulty from the
    instruction's position, the gamed rows tied at 0.5), so the numbers test the plumbing, not AlpacaEval 2.0."""
    mirror = _with_lc_stand_in(mirror, tmp_path / "mirror")
    outputs = json.loads((mirror / "alpaca_eval/results/llama-2-13b-chat-hf/model_outputs.json").read_text())[:30]
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    runs = tmp_path / "runs"
    out = runs / "scores/cut-x/alpaca_eval_2.json"
    server = CountingOpenAIServer()
    try:
        result = _alpaca_eval_cli(["--model-outputs", str(tmp_path / "outputs.json"), "--out", str(out), "--cache",
                                   str(tmp_path / "cache"), "--version", "2.0", "--annotator",
                                   "weighted_alpaca_eval_gpt4_turbo", "--length-controlled"], server.url, mirror)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(out.read_text())
    assert scores["n"] == 30 and scores["version"] == "2.0" and scores["comparable_with_paper"] is False
    annotations = json.loads(out.with_name("alpaca_eval_2.annotations.json").read_text())
    baseline = {r["instruction"]: r["output"] for r in
                json.loads((mirror / "alpaca_eval/alpaca_eval_gpt4_baseline.json").read_text())}
    for a in annotations:  # output_1 = GPT-4 Turbo's reference; the longer answer gets 0.8 when shown first,
        assert a["output_1"] == baseline[a["instruction"]]  # else 0.7 (alpaca_eval shuffles the order)
        longer_first = len(a["output_1"]) > len(a["output_2"])
        assert min(abs(a["preference"] - p) for p in ((1.2, 1.3) if longer_first else (1.7, 1.8))) < 1e-9
    assert scores["win_rate"] == pytest.approx(100 * sum(a["preference"] - 1 for a in annotations) / 30)
    lc = scores["length_controlled_win_rate"]
    assert isinstance(lc, float) and 0 < lc < 100 and lc != pytest.approx(scores["win_rate"], abs=1e-6)

    from repro.config import Config
    from repro.report.tables import build_table, to_markdown

    config = Config.model_validate({"profile": "t", "models": {"tiny": {"source": "tiny"}},
                                    "experiments": {"cut-x": {"base_model": "tiny", "dataset": "shepherd"}},
                                    "evaluation": {"alpaca_eval_2": {"enabled": True}},
                                    "report": {"table2": {"llama2-chat-13b/cut": "cut-x"}}})
    table = build_table("table2", config, runs)
    cells = {c.column: c for key, cells in table.rows if key == "llama2-chat-13b/cut" for c in cells}
    assert cells["alpaca_eval_2_lc"].reproduced == lc and cells["alpaca_eval_2_lc"].paper is None
    assert "AlpacaEval 2.0 LC (not in the paper)" in to_markdown(table)


def _with_lc_stand_in(mirror, dest):
    import csv

    linked_mirror(mirror, dest)
    with open(dest / "alpaca_eval/df_gamed.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "instruction_difficulty", "not_gamed_baseline", "preference", "std_delta_len",
                         "model"])
        for gamed, sign in (("concise", -1), ("verbose", 1)):
            for i in range(805):
                writer.writerow([i, (i % 7 - 3) / 3, False, 0.5, sign, f"stand-in-{gamed}"])
    return dest
