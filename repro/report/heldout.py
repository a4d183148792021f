"""The held-out judgment test as a table and a figure (repro/evaluate/heldout.py, repro/evaluate/contrast.py).

For each split data set and each part (`heldout`: items no run trained on; `insample`: the training part, the
items every run trained on), every run against the base model it started from: the change of preference
accuracy (or AUC), of the blamed tokens' log p, of the good answers' log-likelihood, and the within-answer
contrast; then each configured pair of runs against each other on the same items (CUT against its alpha = 0
ablation, against Hindsight, ...), with the question each pair answers; the contrast by the flagged tokens' base
probability; and the shuffled-judgment control. Every interval is a 95% paired bootstrap over items.
The table reads score files only; `--runs` may point at a committed bundle whose files are gzipped.
"""
from __future__ import annotations

import csv
import gzip
import json
from functools import partial
from pathlib import Path

from repro.evaluate.contrast import STRATA, contrasts, control, interval
from repro.evaluate.heldout import compare
from repro.io import atomic_path, read_jsonl, write_json

PARTS = ("heldout", "insample")
PART_LABELS = {"heldout": "held-out items (never trained on)", "insample": "in-sample items (the training part)"}
LABELS = {"preference_accuracy": "preference accuracy", "auc": "AUC (approved vs criticised)",
          "blamed_logprob": "blamed-token log p", "collateral": "log-likelihood of good answers",
          "contrast": "within-answer contrast Δ(flagged) − Δ(unflagged)"}


def heldout_runs(config, dataset: str) -> list[tuple[str, str]]:
    """(run, its base run) for every experiment trained from a base model on `dataset`."""
    return [(name, f"base-{exp.base_model}") for name, exp in config.experiments.items()
            if exp.dataset == dataset and not exp.init_from and not exp.loop]


def parts(split) -> tuple[str, ...]:
    return PARTS if split.insample else PARTS[:1]


def items_path(runs: str | Path, dataset: str, part: str) -> Path:
    return Path(runs) / "heldout" / dataset / f"{part}.blamed.jsonl"


def score_path(runs: str | Path, dataset: str, part: str, run: str) -> Path:
    return Path(runs) / "heldout" / dataset / "scores" / part / f"{run}.json"


def _read(path: Path) -> str:
    """A file, or its gzipped copy (committed bundles)."""
    if path.is_file():
        return path.read_text(encoding="utf-8")
    packed = path.with_name(path.name + ".gz")
    if packed.is_file():
        return gzip.decompress(packed.read_bytes()).decode("utf-8")
    raise FileNotFoundError(f"{path}: no such file (nor {packed.name})")


def read_items(runs, dataset: str, part: str) -> list[dict]:
    return [json.loads(line) for line in _read(items_path(runs, dataset, part)).splitlines() if line.strip()]


def read_scores(runs, dataset: str, part: str, run: str) -> list[dict]:
    return json.loads(_read(score_path(runs, dataset, part, run)))["items"]


def method(config, run: str) -> str:
    training = config.experiment_training(run)
    extra = f", {training.epochs} epochs" if training.epochs > 1 else ""
    if training.objective == "cut":
        return f"CUT (γ={training.cut.gamma:g}, λ={training.cut.threshold:g}, α={training.cut.alpha:g}{extra})"
    if training.objective == "kto":
        return "KTO" + (" (refinements desirable)" if training.kto.refinements_as_desirable else "") + extra
    return {"hindsight": "Hindsight", "forward_prediction": "Forward Prediction", "ilf_mle": "ILF-MLE",
            "ilf_dpo": "ILF-DPO"}.get(
        training.objective, training.objective) + extra


def run_threshold(config, run: str, split) -> float:
    """The lambda a run's contrast uses: a CUT run's own, otherwise the split's."""
    training = config.experiment_training(run)
    return training.cut.threshold if training.objective == "cut" else split.threshold


def build(config, runs: str | Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"vs_base": [], "pairs": [], "strata": [], "control": [], "items": []}
    for dataset, split in config.heldout.items():
        for part in parts(split):
            items = read_items(runs, dataset, part)
            with_flags = sum(1 for i in items if i.get("blamed"))
            rejected = [i for i in items if "blamed" in i]
            tokens = sum(len(i["log_ratio"]) for i in rejected if "log_ratio" in i)
            out["items"].append({"dataset": dataset, "part": part, "items": len(items),
                                 "rejected": len(rejected), "with_flagged_tokens": with_flags,
                                 "without_flagged_tokens": len(rejected) - with_flags,
                                 "flagged_tokens": sum(len(i["blamed"]) for i in rejected), "tokens": tokens,
                                 "threshold": split.threshold})
            if split.control_seed is not None:
                out["control"].append({"dataset": dataset, "part": part, **control(items)})
            rows_of = partial(_cached_scores, {}, runs, dataset, part)
            for run, base in heldout_runs(config, dataset):
                common = {"dataset": dataset, "part": part, "run": run, "method": method(config, run),
                          "against": base}
                for measure, cell in compare(rows_of(base), rows_of(run), split.bootstrap, split.seed).items():
                    out["vs_base"].append({**common, "measure": measure, "base_value": cell["base"],
                                           "value": cell["run"], "change": cell["change"], "low": cell["low"],
                                           "high": cell["high"], "n": len(items)})
                threshold = run_threshold(config, run, split)
                _contrast_rows(out, common, items, rows_of(run), rows_of(base), threshold, split)
            for pair in split.compare:
                common = {"dataset": dataset, "part": part, "run": pair.run, "method": method(config, pair.run),
                          "against": pair.against, "question": pair.question}
                for measure, cell in compare(rows_of(pair.against), rows_of(pair.run), split.bootstrap,
                                             split.seed).items():
                    out["pairs"].append({**common, "measure": measure, "change": cell["change"],
                                         "low": cell["low"], "high": cell["high"], "n": len(items)})
                threshold = run_threshold(config, pair.run, split)
                _contrast_rows(out, common, items, rows_of(pair.run), rows_of(pair.against), threshold, split,
                               key="pairs")
    return out


def _cached_scores(cache: dict, runs, dataset: str, part: str, run: str) -> list[dict]:
    if run not in cache:
        cache[run] = read_scores(runs, dataset, part, run)
    return cache[run]


def _contrast_rows(out: dict, common: dict, items: list[dict], a: list[dict], b: list[dict], threshold: float,
                   split, key: str = "vs_base") -> None:
    per_item = contrasts(items, a, b, threshold)
    for measure in ("contrast", "flagged_shift"):
        cell = interval(per_item[measure], split.bootstrap, split.seed)
        out[key].append({**common, "measure": measure, "change": cell["mean"], "low": cell["low"],
                         "high": cell["high"], "n": cell["n"], "threshold": threshold})
    for stratum in STRATA:
        cell = interval(contrasts(items, a, b, threshold, stratum)["contrast"], split.bootstrap, split.seed)
        out["strata"].append({**common, "kind": key, "stratum": stratum, "change": cell["mean"], "low": cell["low"],
                              "high": cell["high"], "n": cell["n"], "threshold": threshold})


# ------------------------------------------------------------------------------------------------- writing

def _cell(row: dict | None, digits: int = 3) -> str:
    if row is None or row.get("change") is None:
        return "–" if row is None else f"n/a (n {row.get('n', 0)})"
    value = f"{row['value']:.{digits}f} " if "value" in row else ""
    n = f", n {row['n']}" if row.get("measure") in ("contrast", "flagged_shift") or "stratum" in row else ""
    return f"{value}Δ {row['change']:+.{digits}f} [{row['low']:+.{digits}f}, {row['high']:+.{digits}f}]{n}"


def to_markdown(built: dict, profile: str) -> str:
    lines = [f"# Held-out judgment test ({profile})", "",
             "Log-probabilities are per-token means (natural log) under the plain prompt. Blamed (flagged) tokens "
             "are those Eq. 5 flags under the base model (judgment prompt against plain prompt, ratio above λ). "
             "The within-answer contrast is, per criticised answer, the change of its flagged tokens' mean log p "
             "minus the change of its other tokens' mean log p (negative: the flagged tokens pushed down "
             "relative to the rest of the same answer), at the run's λ for a CUT run. Every interval is a 95% "
             "paired bootstrap over items; n counts the items a contrast is defined on.", ""]
    for info in built["items"]:
        d, p = info["dataset"], info["part"]
        lines += [f"## {d}: {PART_LABELS[p]}", "",
                  f"{info['items']} items, {info['rejected']} with a criticised answer; {info['with_flagged_tokens']}"
                  f" of those have flagged tokens at λ {info['threshold']:g} ({info['without_flagged_tokens']} have "
                  f"none and drop out of the blamed-token measures); {info['flagged_tokens']} of their "
                  f"{info['tokens']} tokens flagged ({_pct(info['flagged_tokens'], info['tokens'])}).", ""]
        rows = [r for r in built["vs_base"] if r["dataset"] == d and r["part"] == p]
        measures = [m for m in ("preference_accuracy", "auc", "blamed_logprob", "collateral") if
                    any(r["measure"] == m for r in rows)]
        lines += ["Each run against the base model:", "",
                  "| run | method | " + " | ".join(LABELS[m] for m in measures) + f" | {LABELS['contrast']} |",
                  "|" + "---|" * (3 + len(measures))]
        keyed = {(r["run"], r["measure"]): r for r in rows}
        for run, name in dict.fromkeys((r["run"], r["method"]) for r in rows):
            cells = [_cell(keyed.get((run, m))) for m in measures] + [_cell(keyed.get((run, "contrast")))]
            lines.append(f"| {run} | {name} | " + " | ".join(cells) + " |")
        base = {r["measure"]: r["base_value"] for r in rows if "base_value" in r}
        lines += ["", "Base model: " + "; ".join(f"{LABELS[m]} {v:.3f}" for m, v in base.items()), ""]
        pairs = [r for r in built["pairs"] if r["dataset"] == d and r["part"] == p]
        if pairs:
            keyed = {(r["run"], r["against"], r["measure"]): r for r in pairs}
            ranking = next((m for m in ("preference_accuracy", "auc") if any(r["measure"] == m for r in pairs)), None)
            lines += ["Method against method on the same items (the first run minus the second):", "",
                      "| runs | question answered | within-answer contrast | flagged tokens' log p | "
                      + (LABELS[ranking] if ranking else "") + " |", "|---|---|---|---|---|"]
            for run, against, question in dict.fromkeys((r["run"], r["against"], r["question"]) for r in pairs):
                lines.append(f"| {run} − {against} | {question} | {_cell(keyed.get((run, against, 'contrast')))} | "
                             f"{_cell(keyed.get((run, against, 'flagged_shift')))} | "
                             f"{_cell(keyed.get((run, against, ranking))) if ranking else ''} |")
            lines.append("")
        strata = [r for r in built["strata"] if r["dataset"] == d and r["part"] == p]
        if strata:
            keyed = {(r["run"], r["against"], r["stratum"]): r for r in strata}
            lines += ["The contrast by the flagged tokens' base probability (unflagged tokens unchanged):", "",
                      "| runs | " + " | ".join(f"flagged tokens with base {s}" for s in STRATA) + " |",
                      "|---|" + "---|" * len(STRATA)]
            for run, against in dict.fromkeys((r["run"], r["against"]) for r in strata):
                lines.append(f"| {run} − {against} | "
                             + " | ".join(_cell(keyed.get((run, against, s))) for s in STRATA) + " |")
            lines.append("")
    if built["control"]:
        lines += ["## Is the detection tied to the judgment? Real against shuffled judgments", "",
                  "Eq. 5 under the base model with each item's own judgment and with another item's (a seeded "
                  "derangement). In-span tokens, a heuristic: the token's text, stripped and lower-cased, is "
                  "alphabetic, at least 4 characters long and occurs in the judgment shown.", "",
                  "| data set | part | tokens | flagged, real | flagged, shuffled | in-span share of flagged, real | "
                  "shuffled | in-span share of all tokens, real | shuffled |", "|---|---|---|---|---|---|---|---|---|"]
        for c in built["control"]:
            lines.append(f"| {c['dataset']} | {c['part']} | {c['tokens']} | {c['flagged_real']} "
                         f"({_share(c['flagged_share_real'])}) | {c['flagged_shuffled']} "
                         f"({_share(c['flagged_share_shuffled'])}) | {_share(c['in_span_share_of_flagged_real'])} | "
                         f"{_share(c['in_span_share_of_flagged_shuffled'])} | "
                         f"{_share(c['in_span_share_of_tokens_real'])} | "
                         f"{_share(c['in_span_share_of_tokens_shuffled'])} |")
    return "\n".join(lines) + "\n"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def write_table(built: dict, out: Path, profile: str) -> None:

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = ["kind", "dataset", "part", "run", "method", "against", "question", "measure", "stratum", "base_value",
              "value", "change", "low", "high", "n", "threshold"]
    with atomic_path(out.with_suffix(".csv")) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for kind in ("vs_base", "pairs", "strata"):
            for row in built[kind]:
                writer.writerow({"kind": row.get("kind", kind), **row})
    with atomic_path(out) as tmp:
        Path(tmp).write_text(to_markdown(built, profile), encoding="utf-8")


def write_figure(built: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in built["vs_base"] + built["pairs"] if r["measure"] == "contrast" and r["change"] is not None]
    panels = list(dict.fromkeys((r["dataset"], r["part"]) for r in rows))
    if not panels:
        return
    height = max(len([r for r in rows if (r["dataset"], r["part"]) == p]) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 1.0 + 0.32 * height), squeeze=False)
    for ax, (dataset, part) in zip(axes[0], panels):
        picked = [r for r in rows if (r["dataset"], r["part"]) == (dataset, part)]
        y = list(range(len(picked)))
        ax.errorbar([r["change"] for r in picked], y, xerr=[[r["change"] - r["low"] for r in picked],
                                                             [r["high"] - r["change"] for r in picked]],
                    fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, [f"{r['run']} − {r['against']}" for r in picked], fontsize=6)
        ax.set_ylim(-0.5, len(picked) - 0.5)
        ax.set_title(f"{dataset}, {part}: within-answer contrast", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)


def write_bundle(config, runs: str | Path, out: str | Path, config_file: str | Path) -> list[Path]:
    """Copy what the table is built from (items with their flags, per-item scores, the training split's
    source_index list, the config) into `out`, gzipped, so a clone can rebuild the table exactly."""
    runs, out = Path(runs), Path(out)
    written = []

    def pack(source: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.with_name(dest.name + ".gz").write_bytes(gzip.compress(source.read_bytes(), mtime=0))
        written.append(dest)

    for dataset, split in config.heldout.items():
        for part in parts(split):
            pack(items_path(runs, dataset, part), items_path(out, dataset, part))
            for run in {r for pair in heldout_runs(config, dataset) for r in pair}:
                pack(score_path(runs, dataset, part, run), score_path(out, dataset, part, run))
        train = read_jsonl(runs / "heldout" / dataset / "train.jsonl")
        write_json(out / "heldout" / dataset / "train_source_index.json", [r["source_index"] for r in train])
    (out / "config.yaml").write_text(Path(config_file).read_text(encoding="utf-8"), encoding="utf-8")
    return written
