"""The held-out judgment test as a table and a figure: every run on a split data set against the base model it
started from, each measure's change with its 95% paired-bootstrap interval (repro/evaluate/heldout.py)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from repro.evaluate.heldout import compare

LABELS = {"preference_accuracy": "preference accuracy", "auc": "AUC (approved vs criticised)",
          "blamed_logprob": "blamed-token log p", "collateral": "log-likelihood of good answers"}


def heldout_runs(config, dataset: str) -> list[tuple[str, str]]:
    """(run, its base run) for every experiment trained from a base model on `dataset`."""
    return [(name, f"base-{exp.base_model}") for name, exp in config.experiments.items()
            if exp.dataset == dataset and not exp.init_from and not exp.loop]


def score_path(runs: str | Path, dataset: str, run: str) -> Path:
    return Path(runs) / "heldout" / dataset / "scores" / f"{run}.json"


def method(config, run: str) -> str:
    training = config.experiment_training(run)
    if training.objective == "cut":
        return f"CUT (γ={training.cut.gamma:g}, λ={training.cut.threshold:g}, α={training.cut.alpha:g})"
    if training.objective == "kto":
        return "KTO" + (" (refinements desirable)" if training.kto.refinements_as_desirable else "")
    return {"hindsight": "Hindsight", "forward_prediction": "Forward Prediction", "ilf_mle": "ILF-MLE"}.get(
        training.objective, training.objective)


def build_rows(config, runs: str | Path) -> list[dict]:
    rows = []
    for dataset, split in config.heldout.items():
        for run, base in heldout_runs(config, dataset):
            base_items = json.loads(score_path(runs, dataset, base).read_text())["items"]
            run_items = json.loads(score_path(runs, dataset, run).read_text())["items"]
            for measure, cell in compare(base_items, run_items, split.bootstrap, split.seed).items():
                rows.append({"dataset": dataset, "run": run, "method": method(config, run), "base": base,
                             "items": len(run_items), "measure": measure, "base_value": cell["base"],
                             "value": cell["run"], "change": cell["change"], "low": cell["low"],
                             "high": cell["high"]})
    return rows


def write_table(rows: list[dict], out: Path, profile: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["dataset"])
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Held-out judgment test ({profile})", "",
             "Each cell: the run's value, then its change from the base model with a 95% paired-bootstrap "
             "interval over held-out items. Log-probabilities are per-token means (natural log) under the plain "
             "prompt; blamed tokens are those Eq. 5 flags under the base model.", ""]
    measures = [m for m in LABELS if any(r["measure"] == m for r in rows)]
    lines += ["| data set | run | method | " + " | ".join(LABELS[m] for m in measures) + " |",
              "|" + "---|" * (3 + len(measures))]
    keyed = {(r["dataset"], r["run"], r["measure"]): r for r in rows}
    for dataset, run, name in dict.fromkeys((r["dataset"], r["run"], r["method"]) for r in rows):
        cells = []
        for m in measures:
            r = keyed.get((dataset, run, m))
            cells.append("" if r is None else f"{r['value']:.3f} (Δ {r['change']:+.3f} [{r['low']:+.3f}, "
                                              f"{r['high']:+.3f}])")
        lines.append(f"| {dataset} | {run} | {name} | " + " | ".join(cells) + " |")
    base_rows = {(r["dataset"], r["measure"]): r["base_value"] for r in rows}
    lines += ["", "Base model: " + "; ".join(f"{d} {LABELS[m]} {v:.3f}" for (d, m), v in base_rows.items())]
    out.write_text("\n".join(lines) + "\n")


def write_figure(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    column = {"preference_accuracy": 0, "auc": 0, "blamed_logprob": 1, "collateral": 2}  # ranking, blamed, good
    n_runs = max([sum(1 for r in rows if r["dataset"] == d and r["measure"] == "collateral") for d in datasets] + [1])
    fig, axes = plt.subplots(len(datasets), 3, figsize=(12.6, len(datasets) * (0.9 + 0.35 * n_runs)), squeeze=False)
    for i, dataset in enumerate(datasets):
        for ax in axes[i]:
            ax.axis("off")
        for measure, j in column.items():
            picked = [r for r in rows if r["dataset"] == dataset and r["measure"] == measure]
            if not picked:
                continue
            ax = axes[i][j]
            ax.axis("on")
            y = list(range(len(picked)))
            ax.errorbar([r["change"] for r in picked], y, xerr=[[r["change"] - r["low"] for r in picked],
                                                                 [r["high"] - r["change"] for r in picked]],
                        fmt="o", capsize=3)
            ax.axvline(0, color="grey", lw=0.8)
            ax.set_yticks(y, [r["method"] for r in picked] if j == 0 else [""] * len(picked), fontsize=7)
            ax.set_ylim(-0.5, len(picked) - 0.5)
            ax.set_title(f"{dataset}: Δ {LABELS[measure]}", fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
