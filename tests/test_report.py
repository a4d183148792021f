"""Tables and figures from finished runs, beside the paper; the stored-results profile; the compute plan."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro.config import config_from_dict, load_config
from repro.report import paper
from repro.report.tables import build_table, to_csv, to_latex, to_markdown

ROOT = Path(__file__).resolve().parent.parent


def _scores(runs: Path, run: str, lm: dict | None = None, alpaca: float | None = None, local=True,
            stderr: dict | None = None):
    """Score files shaped like the evaluators' (repro evaluate lm-eval / alpaca-eval) outputs."""
    folder = runs / "scores" / run
    folder.mkdir(parents=True, exist_ok=True)
    if lm is not None:
        (folder / "lm_eval.json").write_text(json.dumps({"scores": lm, **({"stderr": stderr} if stderr else {})}))
    if alpaca is not None:
        (folder / "alpaca_eval.json").write_text(json.dumps({"win_rate": alpaca, "local_judge": local}))


def _config(report: dict, generated=()) -> object:
    return config_from_dict({
        "profile": "t", "models": {"m": {"source": "tiny"}},
        "data": {"generated": list(generated)},
        "experiments": {"cut-m": {"base_model": "m", "dataset": "shepherd"},
                        "uf-m": {"base_model": "m", "dataset": "cut-ultrafeedback"}},
        "report": report})


def test_table2_cells_average_and_marks(tmp_path):
    lm = {"arc_challenge": 50.0, "hellaswag": 60.0, "mmlu": 40.0, "truthfulqa_mc2": 30.0}
    _scores(tmp_path, "base-m", lm, 20.0)
    _scores(tmp_path, "cut-m", {**lm, "truthfulqa_mc2": 34.0}, None)  # AlpacaEval not run
    config = _config({"table2": {"llama2-chat-13b/base": "base-m", "llama2-chat-13b/cut": "cut-m"}})
    table = build_table("table2", config, tmp_path)
    rows = dict(table.rows)
    base = {c.column: c for c in rows["llama2-chat-13b/base"]}
    assert base["avg"].reproduced == pytest.approx(45.0)  # mean of the four ranking tasks
    assert base["avg"].paper == paper.TABLE2[("llama2-chat-13b", "base")][4]
    assert base["arc"].diff == pytest.approx(50.0 - 58.02)
    assert base["alpaca_eval"].local_judge and not base["arc"].local_judge
    cut = {c.column: c for c in rows["llama2-chat-13b/cut"]}
    assert cut["truthfulqa"].reproduced == 34.0 and cut["alpaca_eval"].reproduced is None
    assert all(c.reproduced is None and c.paper is not None for c in rows["llama2-13b/cut"])  # not mapped
    md = to_markdown(table)
    assert "| llama2-chat-13b/base | 50.00 / 58.02 / -8.02 |" in md and "20.00† / 81.09 / -61.09" in md
    cells = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert len(cells) == 12 * 6 and all(c["paper"] for c in cells)  # every cell holds the paper's value
    assert r"50.00 (58.02)" in to_latex(table)


def test_benchmark_cells_carry_lm_evals_standard_error(tmp_path):
    """± is lm-eval's standard error of each benchmark; Avg.'s combines the four as independent; AlpacaEval cells
    and runs scored before standard errors were kept show none."""
    lm = {"arc_challenge": 50.0, "hellaswag": 60.0, "mmlu": 40.0, "truthfulqa_mc2": 30.0}
    stderr = {"arc_challenge": 1.2, "hellaswag": 0.4, "mmlu": 0.3, "truthfulqa_mc2": 1.6}
    _scores(tmp_path, "base-m", lm, 20.0, stderr=stderr)
    _scores(tmp_path, "cut-m", lm)  # no standard errors in the file
    config = _config({"table2": {"llama2-chat-13b/base": "base-m", "llama2-chat-13b/cut": "cut-m"}})
    table = build_table("table2", config, tmp_path)
    base = {c.column: c for c in dict(table.rows)["llama2-chat-13b/base"]}
    assert base["arc"].stderr == 1.2 and base["alpaca_eval"].stderr is None
    assert base["avg"].stderr == pytest.approx((1.2 ** 2 + 0.4 ** 2 + 0.3 ** 2 + 1.6 ** 2) ** 0.5 / 4)
    md = to_markdown(table)
    assert "| llama2-chat-13b/base | 50.00 ± 1.20 / 58.02 / -8.02 |" in md and "20.00† / 81.09" in md
    assert "| llama2-chat-13b/cut | 50.00 / 58.45 / -8.45 (γ 0) |" in md
    cells = {(c["row"], c["column"]): c for c in csv.DictReader(io.StringIO(to_csv(table)))}
    assert cells[("llama2-chat-13b/base", "mmlu")]["stderr"] == "0.3"
    assert cells[("llama2-chat-13b/cut", "mmlu")]["stderr"] == ""
    assert r"50.00$\pm$1.20 (58.02)" in to_latex(table)
    assert "† AlpacaEval judged by a local model" in md and "‡" not in md  # a footnote only for a mark in use


def test_a_row_with_several_runs_labels_each_with_its_gamma(tmp_path):
    """The paper's headline CUT rows both ways: the released gamma 0 and the paper's gamma > 0, one row each,
    both against the published numbers; every cell from a CUT run carries its gamma."""
    lm = {"arc_challenge": 50.0, "hellaswag": 60.0, "mmlu": 40.0, "truthfulqa_mc2": 30.0}
    _scores(tmp_path, "cut-m", lm)
    _scores(tmp_path, "cut-m-dynamic", {**lm, "truthfulqa_mc2": 35.0})
    config = config_from_dict({
        "profile": "t", "models": {"m": {"source": "tiny"}},
        "experiments": {"cut-m": {"base_model": "m", "dataset": "shepherd"},
                        "cut-m-dynamic": {"base_model": "m", "dataset": "shepherd", "training": {"cut": {"gamma": 1}}},
                        "hs-m": {"base_model": "m", "dataset": "shepherd", "training": {"objective": "hindsight"}}},
        "report": {"table2": {"llama2-chat-13b/cut": ["cut-m", "cut-m-dynamic"], "llama2-chat-13b/hindsight": "hs-m"}}})
    table = build_table("table2", config, tmp_path)
    rows = dict(table.rows)
    released, dynamic = rows["llama2-chat-13b/cut (γ=0, released)"], rows["llama2-chat-13b/cut (γ=1)"]
    assert {c.column: c.reproduced for c in released}["truthfulqa"] == 30.0
    assert {c.column: c.reproduced for c in dynamic}["truthfulqa"] == 35.0
    assert all(c.paper == d.paper for c, d in zip(released, dynamic))  # both against the published row
    assert {c.gamma for c in released} == {0.0} and {c.gamma for c in dynamic} == {1.0}
    assert {c.gamma for c in rows["llama2-chat-13b/hindsight"]} == {None}  # not a CUT run
    assert len(table.rows) == 13
    md = to_markdown(table)
    assert "35.00 / 52.58 / -17.58 (γ 1)" in md and "30.00 / 52.58 / -22.58 (γ 0)" in md
    gammas = {(r["row"], r["column"]): r["gamma"] for r in csv.DictReader(io.StringIO(to_csv(table)))}
    assert gammas[("llama2-chat-13b/cut (γ=1)", "arc")] == "1.0"
    assert gammas[("llama2-chat-13b/hindsight", "arc")] == ""


def test_paper_profile_fills_the_headline_cut_rows_both_ways():
    config = load_config(ROOT / "config/paper.yaml")
    for table, row in (("table2", "llama2-13b/cut"), ("table2", "llama2-chat-13b/cut"), ("table5", "gemma-7b-it/cut"),
                       ("table6", "cut_offline"), ("table6", "cut_online_iter3")):
        runs = config.report[table][row]
        gammas = [config.experiment_training(r).cut.gamma for r in runs]
        assert gammas[0] == 0 and gammas[1] > 0, (table, row)
    chain = [config.experiments[f"cut-online-dynamic-iter{k}"].init_from for k in range(1, 6)]
    assert chain == [None] + [f"cut-online-dynamic-iter{k}" for k in range(1, 5)]


def test_column_sources_and_generated_data_marks(tmp_path):
    _scores(tmp_path, "uf-m", {"truthfulqa_mc2": 41.0}, None)
    config = _config({"table4": {"cut": {"generalist_truthfulqa": "uf-m"}, "base": {"*": "base-m"}}},
                     generated=["cut-ultrafeedback"])
    rows = dict(build_table("table4", config, tmp_path).rows)
    generalist, specialist = rows["cut"]
    assert (generalist.reproduced, generalist.generated_data, specialist.source) == (41.0, True, None)
    with pytest.raises(ValueError, match="unknown rows"):
        build_table("table2", _config({"table2": {"llama2-chat-13b/nonsense": "base-m"}}), tmp_path)
    with pytest.raises(ValueError, match="unknown columns"):
        build_table("table4", _config({"table4": {"cut": {"arc": "base-m"}}}), tmp_path)


def test_stored_profile_reproduces_table6_alpaca_cells_offline(tmp_path, mirror):
    """The stored GPT-4 annotations feed Table 6 through the workflow, in seconds, with no model at all."""
    work = tmp_path / "w"
    (work / "config").mkdir(parents=True)
    (work / "config/stored.yaml").write_text((ROOT / "config/stored.yaml").read_text().replace(
        "../shared/data", str(mirror)))
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "config/stored.yaml",
                             "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work)],
                            capture_output=True, text=True, cwd=work,
                            env={**os.environ, "REPRO_DATA_MIRROR": str(mirror)})  # CI's is relative
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.time() - started < 60
    cells = {(r["row"], r["column"]): r for r in csv.DictReader(open(work / "tables/stored/table6.csv"))}
    base, cut4 = cells[("base", "alpaca_eval")], cells[("cut_online_iter4", "alpaca_eval")]
    assert float(base["reproduced"]) == pytest.approx(81.09, abs=0.005) and float(base["paper"]) == 81.09
    assert float(cut4["reproduced"]) == pytest.approx(91.36, abs=0.005) and float(cut4["paper"]) == 91.68
    assert cut4["run"] == "stored:cut-13b" and cut4["local_judge"] == "False"
    assert cells[("cut_online_iter4", "arc")]["reproduced"] == ""  # only what the artefacts hold


def test_nan_never_reaches_a_table_or_a_json_file(tmp_path):
    import math

    from repro.evaluate.winrate import winrate
    from repro.io import write_json
    from repro.report.cells import read_value

    score = tmp_path / "runs/t/scores/r/alpaca_eval.json"
    score.parent.mkdir(parents=True)
    score.write_text('{"win_rate": NaN}')
    with pytest.raises(ValueError, match="win_rate is nan"):
        read_value(tmp_path / "runs/t", "r", "alpaca_eval")
    with pytest.raises(ValueError, match="non-finite"):
        write_json(tmp_path / "x.json", {"a": math.nan})
    one = winrate([{"preference": 2.0}])
    assert one["win_rate"] == 100.0 and one["standard_error"] is None  # was NaN: invalid JSON
    with pytest.raises(ValueError, match="no annotation has a preference"):
        winrate([{"preference": None}])


def test_a_table_refuses_another_profiles_runs(tmp_path, capsys):
    from repro.cli import main

    runs = tmp_path / "runs/small"  # a smoke table over the small profile's folder
    code = main(["report", "table", "table6", "--config", str(ROOT / "config/smoke.yaml"), "--runs", str(runs),
                 "--out", str(tmp_path / "t.md"), "--allow-missing"])
    assert code == 2 and "the runs of profile 'small', not of 'smoke'" in capsys.readouterr().err
