"""Training curves: one figure per trained run, drawn from the `train_log.jsonl` beside its adapter (the CUT loop
logs loss, NLL, UL, the flagged-token rate, the learning rate and the gradient norm per step; the TRL runner
logs the Trainer's loss, learning rate and gradient norm), whatever tracker the run reported to."""
from __future__ import annotations

from pathlib import Path

from repro.io import read_jsonl
from repro.report.figures import _pyplot

# panel title -> the log keys that fill it (the first one a log has)
PANELS = {"loss": ("loss",), "likelihood (NLL)": ("nll",), "unlikelihood (UL)": ("ul",),
          "flagged tokens (share)": ("flagged_rate",), "learning rate": ("lr", "learning_rate"),
          "gradient norm": ("grad_norm",)}


def read_log(path: Path) -> list[dict]:
    rows = read_jsonl(path)  # (a line that is not a JSON object is an error naming the file and line)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row.get("step"), int):
            raise ValueError(f"{path}, row {number}: a training-log row needs an integer 'step'")
    return rows


def series(rows: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """Each panel's (steps, values) from the keys the log has; panels without data are left out."""
    found = {}
    for title, keys in PANELS.items():
        key = next((k for k in keys if any(isinstance(r.get(k), (int, float)) for r in rows)), None)
        if key:
            points = [(r["step"], float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]
            found[title] = ([s for s, _ in points], [v for _, v in points])
    return found


def plot_curves(log: Path, out_png: Path, title: str) -> Path:

    panels = series(read_log(log))
    if not panels:
        raise ValueError(f"{log}: no loss, learning-rate or gradient values to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, (name, (steps, values)) in zip(axes[0], panels.items()):
        ax.plot(steps, values, marker="." if len(steps) < 50 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("optimiser step", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{title}  ({log})", fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


def write_curves(runs: Path, experiments: list[str], out: Path) -> list[Path]:
    """`<out>/<experiment>.png` for every experiment; a missing log names the run."""
    written = []
    for name in experiments:
        log = Path(runs) / "experiments" / name / "train_log.jsonl"
        if not log.is_file():
            raise FileNotFoundError(f"{log}: no training log for run '{name}'; train it first")
        written.append(plot_curves(log, Path(out) / f"{name}.png", name))
    return written
