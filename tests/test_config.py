"""Every shipped config loads and validates; bad keys and types are errors naming the key."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from repro.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "config").glob("*.yaml"))


def test_the_three_profiles_ship():
    assert {p.stem for p in CONFIGS} >= {"paper", "smoke", "mini"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_validates(path):
    config = load_config(path)
    assert config.profile == path.stem
    for name in config.experiments:
        config.experiment_training(name)


def test_paper_config_holds_the_papers_settings():
    c = load_config(ROOT / "config/paper.yaml")
    t = c.training
    assert (t.batch_size, t.micro_batch_size, t.learning_rate, t.lr_scheduler, t.warmup_steps) == (
        8, 1, 4e-4, "cosine", 100)
    assert (t.cutoff_len, t.downsample, t.seed, t.epochs, t.load_in_8bit) == (2048, 0.25, 42, 1, True)
    assert (t.lora.r, t.lora.alpha, t.lora.dropout, t.lora.targets) == (
        16, 16, 0.05, ["gate_proj", "down_proj", "up_proj"])
    assert (t.cut.gamma, t.cut.combine) == (0.0, "mean")
    online = c.experiment_training("cut-online-iter1").cut
    assert (online.threshold, online.alpha) == (1.1, 1.0)
    offline = c.experiment_training("cut-shepherd-llama2-chat-13b").cut
    assert (offline.threshold, offline.alpha) == (1.2, 0.5)
    assert c.experiments["cut-online-iter3"].init_from == "cut-online-iter2"
    assert (c.generation.max_new_tokens, c.generation.temperature) == (2048, 0.0)
    assert (c.evaluation.alpaca_eval.version, c.evaluation.alpaca_eval.annotator) == ("1.0", "alpaca_eval_gpt4")
    shots = {k: (v.num_fewshot, v.metric) for k, v in c.evaluation.lm_eval.tasks.items()}
    assert shots == {"arc_challenge": (25, "acc_norm"), "hellaswag": (10, "acc_norm"), "mmlu": (5, "acc"),
                     "truthfulqa_mc2": (0, "mc2")}
    assert c.models["llama2-chat-13b"].path == "meta-llama/Llama-2-13b-chat-hf"


def _write(tmp_path, mutate):
    data = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["training"].update(lr=0.1), r"bad.yaml: training.lr: unknown key"),
    (lambda d: d["training"].update(batch_size="eight"), r"bad.yaml: training.batch_size: .*integer"),
    (lambda d: d["training"].setdefault("cut", {}).update(combine="avg"), r"training.cut.combine: .*'mean' or 'sum'"),
    (lambda d: d.update(colour="blue"), r"bad.yaml: colour: unknown key"),
    (lambda d: d["experiments"]["cut-shepherd-tiny"]["training"].update(threshhold=1.0),
     r"bad.yaml: experiments.cut-shepherd-tiny.training.threshhold: unknown key"),
    (lambda d: d["experiments"]["cut-shepherd-tiny"]["training"]["cut"].update(alpha="half"),
     r"experiments.cut-shepherd-tiny.training.cut.alpha: .*number"),
    (lambda d: d["experiments"]["cut-shepherd-tiny"].update(base_model="gpt5"), r"'gpt5' is not a key of models"),
    (lambda d: d["training"].update(batch_size=5), r"batch_size must be a multiple of micro_batch_size"),
])
def test_bad_config_names_the_key(tmp_path, mutate, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, mutate))


def test_every_cut_row_of_the_paper_tables_comes_both_ways():
    """Tables 2, 3 and 5 show each CUT row twice in the paper profile: the released gamma 0 and the paper's
    gamma > 0 (Table 4's CUT row, which the headline rows repeat, is the dynamic one). Table 3 once had only gamma 0."""
    config = load_config(ROOT / "config/paper.yaml")
    for table in ("table2", "table3", "table5"):
        for row, runs in config.report[table].items():
            if not row.endswith("/cut"):
                continue
            gammas = sorted(config.experiment_training(run).cut.gamma for run in runs)
            assert isinstance(runs, list) and gammas[0] == 0 and gammas[-1] > 0, f"{table} {row}: {runs}"
