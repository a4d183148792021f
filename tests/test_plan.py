"""The compute plan: each run charged for what its cells show, GPU figures from the calibration files (measured or
extrapolated, and said so), lm-eval tokens from the real requests, and the memory estimator against every peak
measured on a GPU."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from repro import calibration
from repro.check.memory import Arch, measured_estimate, training_gib
from repro.config import Training, config_from_dict, load_config

ROOT = Path(__file__).resolve().parent.parent


def _raw(name: str = "paper") -> dict:
    return yaml.safe_load((ROOT / f"config/{name}.yaml").read_text())


@pytest.fixture(scope="module")
def paper_plan(mirror):
    from repro.check.plan import plan
    from repro.data import DataStore

    return plan(load_config(ROOT / "config/paper.yaml"), "H100", DataStore(mirror=mirror))


def test_the_paper_costs_at_most_100_gpu_hours_and_5000_dollars_each_figure_labelled(paper_plan):
    total = paper_plan["total"]
    assert total["gpu_hours"] <= 100 and total["judge_usd"] <= 5000, total
    assert total["measured"] is False  # the paper step and scoring are extrapolations until a GPU measures them
    figures = paper_plan["figures"]
    assert all("measured:" in text or "extrapolated:" in text for text in figures.values()), figures
    assert "H200's figure carried over" in figures["scoring MFU"]  # an H100 has no measurements of its own
    assert all(how.startswith("counted from the real requests") for how in paper_plan["scoring_tokens"].values() if
               "llama-2" in how)


def test_each_run_is_charged_for_what_its_cells_show(paper_plan):
    rows = {r["run"]: r for section in paper_plan["sections"].values() for r in section}
    figure7 = {r["run"]: r for r in paper_plan["sections"]["figure7"]}
    for run, row in figure7.items():
        if run != "cut-online-iter1":  # also a Table 6 row
            assert row["metrics"] == ["truthfulqa_mc2"] and row["judge_usd"] == 0, row
    assert set(rows["cut-online-iter1"]["metrics"]) >= {"truthfulqa_mc2", "arc_challenge", "alpaca_eval"}
    assert rows["cut-summarization-llama2-13b"]["metrics"] == ["rouge"]  # Table 3: ROUGE only
    # Figure 2 reads the model itself: its run needs nothing beyond what Tables 2/4/5/6 already score
    assert rows["cut-online-iter2"]["eval_gpu_h"] > 0
    assert rows["base-llama2-13b"]["judge_usd"] > 0
    # a Table 2 run reads AlpacaEval 2.0 as well, a Table 5 run does not
    assert rows["cut-shepherd-llama2-chat-7b"]["judge_usd"] < rows["cut-shepherd-llama2-13b"]["judge_usd"]


def test_a_profile_without_alpaca_eval_is_charged_no_judge(mirror):
    from repro.check.plan import plan
    from repro.data import DataStore

    result = plan(load_config(ROOT / "config/small.yaml"), "H100", DataStore(mirror=mirror))
    assert result["total"]["judge_usd"] == 0


def test_the_plan_scales_with_model_size_loops_and_gpu(paper_plan, mirror):
    from repro.check.plan import JUDGMENT, plan
    from repro.data import DataStore

    config = load_config(ROOT / "config/paper.yaml")
    rows = {r["run"]: r for section in paper_plan["sections"].values() for r in section}
    assert rows["cut-shepherd-llama2-chat-70b"]["train_gpu_h"] > 4 * rows["cut-shepherd-llama2-chat-13b"]["train_gpu_h"]
    gpt4 = config.judges["gpt-4"]
    live = plan(config_from_dict({**_raw(), "report": {"table6": {"cut_online_iter1": "live-iter1"}}}), "H100",
                DataStore(mirror=mirror))
    per_judgment = (JUDGMENT["input_tokens"] * gpt4.usd_per_1m_input_tokens
                    + JUDGMENT["output_tokens"] * gpt4.usd_per_1m_output_tokens) / 1e6
    assert live["sections"]["table6"][0]["judge_usd"] > 1000 * per_judgment  # 1000 judgments + its AlpacaEval
    a100 = plan(config, "A100", DataStore(mirror=mirror))
    assert a100["total"]["gpu_hours"] > 2.5 * paper_plan["total"]["gpu_hours"]  # 312 vs 989 TFLOP/s, less bandwidth
    with pytest.raises(ValueError, match="no calibration for GPU 'TPU'"):
        plan(config, "TPU")


def test_scoring_everything_costs_more_than_scoring_what_the_cells_show(paper_plan, mirror):
    from repro.check.plan import plan
    from repro.data import DataStore

    everything = plan(config_from_dict({**_raw(), "evaluation": {**_raw()["evaluation"], "score": "all"}}), "H100",
                      DataStore(mirror=mirror))
    assert everything["total"]["gpu_hours"] > paper_plan["total"]["gpu_hours"]
    assert everything["total"]["judge_usd"] > paper_plan["total"]["judge_usd"] + 1000


# ------------------------------------------------------------------ calibration


def test_a_training_mfu_is_the_nearest_measurement_times_the_factors_it_lacks():
    h200 = calibration.load("H200")
    plain = h200.train_mfu("lora", False, False)
    assert plain.measured and plain.value == h200.phases["train_lora"].value
    paper = h200.train_mfu("lora", True, True)
    factors = h200.factors["checkpointing"].value * h200.factors["8bit"].value
    assert not paper.measured and paper.value == pytest.approx(plain.value * factors)
    assert "train_lora" in paper.source and "checkpointing" in paper.source and "8bit" in paper.source
    measured = calibration.Calibration("X", 1e15, 80, 1e12, {**h200.phases, "train_lora_checkpointing": plain},
                                       h200.factors, ())
    nearer = measured.train_mfu("lora", True, True)  # a checkpointing measurement needs only the 8-bit factor
    assert nearer.value == pytest.approx(plain.value * h200.factors["8bit"].value)
    h100 = calibration.load("H100")
    assert all(not f.measured and "H200's figure carried over" in f.source for f in h100.phases.values())


def test_the_memory_estimator_is_within_10_percent_of_every_measured_peak():
    peaks = [entry for gpu in calibration.gpus() for entry in calibration.load(gpu).memory]
    assert len(peaks) >= 8
    for entry in peaks:
        estimate = measured_estimate(entry)
        assert abs(estimate / entry["peak_gib"] - 1) <= 0.10, (entry, estimate)


def test_k_bit_models_hold_their_unquantised_parameters_in_fp32():
    arch = Arch(40, 5120, 13824, 40, 40, 128, 32000)  # LLaMA-2-13B
    eight = training_gib(arch, Training(load_in_8bit=True, weights_dtype="fp16"), 2049, 2)
    bf16 = training_gib(arch, Training(weights_dtype="fp16"), 2049, 2)
    embeddings = arch.embedding_params
    assert eight["weights"] * 2**30 == pytest.approx(arch.linear_params * 1 + embeddings * 4)
    assert bf16["weights"] * 2**30 == pytest.approx(arch.linear_params * 2 + embeddings * 2)
