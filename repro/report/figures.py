"""Figures 2, 3, 4 and 7 from finished runs, as .png and .pdf with the plotted numbers in a .csv beside them.

The paper states only a few values of its figures (repro/report/paper.py FIGURES): those are drawn as black
markers next to the reproduced bars or points; everything else in the paper's figures is unknown here.
Figure 2 is computed from a model: per-token probabilities of one response under the Align-N (judgment) and
Misalign (plain) contexts, with the tokens CUT flags (ratio above lambda) marked.
"""
from __future__ import annotations

import csv
from pathlib import Path

from repro.io import read_jsonl
from repro.models.load import load_causal_lm, with_adapter
from repro.report import paper
from repro.report.cells import read_value, score_file

METRICS = ("arc", "hellaswag", "mmlu", "truthfulqa", "alpaca_eval")
LABELS = {"arc": "ARC", "hellaswag": "HellaSwag", "mmlu": "MMLU", "truthfulqa": "TruthfulQA",
          "alpaca_eval": "AlpacaEval"}
FIGURE_ROWS = {
    "figure3": ("base", "oracle", "ai_judge_3000", "ai_judge_5000"),
    "figure4": tuple(f"{b}/{m}" for b in ("llama2-13b", "llama2-chat-13b") for m in ("base", "dpo", "cut_uf", "cut"))
    + tuple(f"{m}/{n}" for m in ("dpo", "cut") for n in (1000, 2000, 3000)),
    "figure7": tuple(str(x) for x in paper.FIGURES["figure7"]["x_ratio"]),
}
FIGURE_METRICS = {"figure3": METRICS, "figure4": METRICS, "figure7": ("truthfulqa",)}
FIGURES = ("figure2", "figure3", "figure4", "figure7")  # the paper's figures with data (1, 5, 6, 8, 9 are schematic)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_values(name: str, config, runs: Path, store=None) -> dict[str, dict[str, float | None]]:
    mapping = config.report.get(name, {})
    unknown = set(mapping) - set(FIGURE_ROWS[name])
    if unknown:
        raise ValueError(f"report.{name}: unknown keys {sorted(unknown)}; known: {list(FIGURE_ROWS[name])}")
    values = {}
    for key in FIGURE_ROWS[name]:
        source = mapping.get(key)
        values[key] = {m: (read_value(runs, source, m, store).value if source else None) for m in FIGURE_METRICS[name]}
    return values


def paper_points(name: str) -> dict[str, dict[str, float]]:
    """The values the paper states (or that follow from stated deltas), keyed like figure_values."""
    t6 = {k: paper.row(paper.TABLE6, paper.TABLE6_COLUMNS, k) for k in paper.TABLE6}
    t2 = {k: paper.row(paper.TABLE2, paper.TABLE2_COLUMNS, k) for k in paper.TABLE2}
    if name == "figure3":
        base = {m: t6["base"][m] for m in METRICS}
        delta = paper.FIGURES["figure3"]["ai_judge_5000_delta"]
        return {"base": base, "oracle": {m: t6["cut_online_iter1"][m] for m in METRICS},
                "ai_judge_5000": {m: base[m] + d for m, d in delta.items()}}
    if name == "figure4":
        return {f"{b}/base": {m: t2[(b, "base")][m] for m in METRICS} for b in ("llama2-13b", "llama2-chat-13b")}
    return {}


def input_files(name: str, config, runs: Path) -> list[str]:
    files = set()
    for source in config.report.get(name, {}).values():
        if name == "figure2" or not isinstance(source, str):
            continue
        for metric in FIGURE_METRICS[name]:
            path = score_file(Path(runs), source, metric)
            if path is not None:
                files.add(str(path))
    return sorted(files)


def _write_csv(path: Path, rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def _save(fig, out_png: Path, profile: str, title: str, stated: bool = True) -> list[Path]:
    note = "; black markers: values stated in the paper" if stated else ""
    fig.suptitle(f"{title}  [profile: {profile}{note}]", fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_png, out_png.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path)
    _pyplot().close(fig)
    return paths


def plot_bars(name: str, config, runs: Path, out_png: Path, store=None) -> list[Path]:
    plt = _pyplot()
    values, stated = figure_values(name, config, runs, store), paper_points(name)
    keys = [k for k in FIGURE_ROWS[name] if "/" not in k or k.split("/")[1] in ("base", "dpo", "cut_uf", "cut")]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.4))
    for ax, metric in zip(axes, METRICS):
        for i, key in enumerate(keys):
            got = values[key][metric]
            ax.bar(i, got if got is not None else 0, color="C0" if got is not None else "none", edgecolor="C0")
            if key in stated and metric in stated[key]:
                ax.plot(i, stated[key][metric], "k_", markersize=14, mew=2)
        ax.set_xticks(range(len(keys)), keys, rotation=60, ha="right", fontsize=7)
        ax.set_title(LABELS[metric], fontsize=9)
    rows = [["key", "metric", "reproduced", "paper"]] + [
        [k, m, values[k][m], stated.get(k, {}).get(m)] for k in values for m in values[k]]
    _write_csv(out_png.with_suffix(".csv"), rows)
    title = {"figure3": "Figure 3: online alignment with AI judges",
             "figure4": "Figure 4(a): DPO vs CUT-UF vs CUT (1000 instructions)"}[name]
    paths = _save(fig, out_png, config.profile, title)
    if name == "figure4":
        paths += plot_scaling(config, runs, out_png, values)
    return paths


def plot_scaling(config, runs: Path, out_png: Path, values: dict) -> list[Path]:
    """Figure 4(b): DPO and CUT against the number of instructions (0 = the LLaMA2-chat-13b base)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.0))
    for ax, metric in zip(axes, METRICS):
        for method in ("dpo", "cut"):
            xs = [0, 1000, 2000, 3000]
            ys = [values["llama2-chat-13b/base"][metric]] + [values[f"{method}/{n}"][metric] for n in xs[1:]]
            ax.plot([x for x, y in zip(xs, ys) if y is not None], [y for y in ys if y is not None], "o-", label=method)
        ax.set_title(LABELS[metric], fontsize=9)
        ax.set_xticks(xs)
    axes[0].legend(fontsize=7)
    return _save(fig, out_png.with_name(out_png.stem + "b.png"), config.profile, "Figure 4(b): scaling with data",
                 stated=False)


def plot_ratio(config, runs: Path, out_png: Path, store=None) -> list[Path]:
    plt = _pyplot()
    values = figure_values("figure7", config, runs, store)
    keys = list(FIGURE_ROWS["figure7"])
    fig, ax = plt.subplots(figsize=(6, 3.4))
    points = [(i, values[k]["truthfulqa"]) for i, k in enumerate(keys) if values[k]["truthfulqa"] is not None]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-")
    ax.axvline(keys.index("0.25"), color="k", linestyle=":", label="paper keeps 0.25")
    ax.set_xticks(range(len(keys)), keys)
    ax.set_xlabel("|Align-P| / |Align-N|")
    ax.set_ylabel("TruthfulQA (mc2)")
    ax.legend(fontsize=7)
    _write_csv(out_png.with_suffix(".csv"), [["ratio", "truthfulqa"]] + [[k, values[k]["truthfulqa"]] for k in keys])
    return _save(fig, out_png, config.profile, "Figure 7: Align-P ratio in online iteration 1", stated=False)


def plot_token_probabilities(config, runs: Path, out_png: Path) -> list[Path]:
    """Figure 2, computed: p(y_t | x, j) and p(y_t | x) for one negative training instance of a run."""
    import torch
    from transformers import AutoTokenizer

    from repro.cut.collate import encode_instance
    from repro.cut.hidden import target_logprobs
    from repro.cut.logprobs import IGNORE
    from repro.cut.loss import flag_tokens

    spec = config.report.get("figure2", {})
    run, index = spec.get("run"), int(spec.get("example", 0))
    if run not in config.experiments:
        raise ValueError("report.figure2.run must name an experiment (its starting model, adapter and instances)")
    base = config.base_model_path(run, runs)
    adapter = Path(runs) / "experiments" / run / "adapter"
    instances = [i for i in read_jsonl(Path(runs) / "experiments" / run / "instances.jsonl") if i["kind"] == "align_n"]
    if not instances:
        raise ValueError(f"{run}: no negative instance to draw")
    instance = instances[min(index, len(instances) - 1)]
    # the adapter carries the tokenizer the run trained with (the config's tokenizer source, if any)
    tokenizer = AutoTokenizer.from_pretrained(adapter if (adapter / "tokenizer_config.json").is_file() else base)
    model = load_causal_lm(base, dtype=torch.float32)
    if adapter.is_dir() and spec.get("adapter", True):
        model = with_adapter(model, adapter)
    model.eval()
    example = encode_instance(tokenizer, instance, 4096, run)
    logps = []
    for seq in (example.first, example.misalign):
        ids, targets = torch.tensor([seq.ids]), torch.tensor([seq.labels()[1:] + [IGNORE]])  # t predicts t + 1
        with torch.no_grad():
            logps.append(target_logprobs(model, ids, torch.ones_like(ids), targets).double())
    probs = [logp.exp().tolist() for logp in logps]
    threshold = config.experiment_training(run).cut.threshold
    flagged = flag_tokens(*logps, threshold).tolist()
    tokens = [tokenizer.decode([t]) for t in example.first.ids[example.first.n_masked:]]
    plt = _pyplot()
    shown = min(len(tokens), 40)
    fig, ax = plt.subplots(figsize=(max(6, shown * 0.3), 3.6))
    xs = range(shown)
    ax.plot(xs, probs[0][:shown], "o-", label="p(y_t | x, j)  Align-N")
    ax.plot(xs, probs[1][:shown], "s-", label="p(y_t | x)  Misalign")
    for x in xs:
        if flagged[x]:
            ax.axvspan(x - 0.5, x + 0.5, color="C3", alpha=0.2)
    ax.set_xticks(list(xs), [t.replace("\n", "\\n") for t in tokens[:shown]], rotation=90, fontsize=7)
    ax.set_ylabel("probability")
    ax.legend(fontsize=7, title=f"shaded: flagged (ratio > {threshold})", title_fontsize=7)
    _write_csv(out_png.with_suffix(".csv"), [["token", "p_align_n", "p_misalign", "flagged"]] + [
        [t, a, m, f] for t, a, m, f in zip(tokens, *probs, flagged)])
    return _save(fig, out_png, config.profile, f"Figure 2: per-token probabilities ({run}, first {shown} tokens)",
                 stated=False)


def build_figure(name: str, config, runs: str | Path, out_png: str | Path, store=None) -> list[Path]:
    runs, out_png = Path(runs), Path(out_png)
    if name == "figure2":
        return plot_token_probabilities(config, runs, out_png)
    if name == "figure7":
        return plot_ratio(config, runs, out_png, store)
    if name in ("figure3", "figure4"):
        return plot_bars(name, config, runs, out_png, store)
    raise ValueError(f"unknown figure '{name}' ({', '.join(FIGURES)})")
