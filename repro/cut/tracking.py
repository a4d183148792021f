"""Experiment tracking (config `training.report_to`): the CUT loop's per-step records go to TensorBoard, trackio or
Weights & Biases, and the TRL runner hands the same choice to the HF Trainer. Every run also keeps
`train_log.jsonl`, which the report draws its training curves from whatever the tracker."""
from __future__ import annotations

import os
from pathlib import Path

TRACKERS = ("none", "tensorboard", "trackio", "wandb")
CURVES = ("loss", "nll", "ul", "flagged_rate", "lr", "grad_norm", "tokens_per_s")  # the scalars a CUT step logs


def tracker_folder(out: Path) -> Path:
    """Where a run's TensorBoard events go: beside its adapter, for CUT and TRL runs alike."""
    return Path(out).parent / "tensorboard"


def trainer_report_to(report_to: str, out: Path) -> list[str]:
    """`TrainingArguments.report_to` for the TRL runner; TensorBoard writes into the run's own folder (transformers
    reads that from TENSORBOARD_LOGGING_DIR)."""
    if report_to == "none":
        return []
    if report_to == "tensorboard":
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tracker_folder(out))
    _require(report_to)
    return [report_to]


class Tracker:
    """One run's tracker in the CUT loop: `log(record, step)` sends the scalars of a training-log record."""

    def __init__(self, report_to: str, out: Path, run_name: str, settings: dict):
        self.kind = report_to
        _require(report_to)
        if report_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(tracker_folder(out)))
        else:  # trackio speaks wandb's init / log / finish
            self._module = __import__(report_to)
            self._module.init(project=os.environ.get("REPRO_TRACKING_PROJECT", "cut-repro"), name=run_name,
                              config=settings)

    def log(self, record: dict, step: int) -> None:
        scalars = {f"train/{key}": float(record[key]) for key in CURVES if record.get(key) is not None}
        if self.kind == "tensorboard":
            for key, value in scalars.items():
                self._writer.add_scalar(key, value, step)
        else:
            self._module.log(scalars, step=step)

    def close(self) -> None:
        if self.kind == "tensorboard":
            self._writer.close()
        else:
            self._module.finish()


def open_tracker(report_to: str, out: Path, run_name: str, settings: dict) -> Tracker | None:
    return None if report_to == "none" else Tracker(report_to, out, run_name, settings)


def _require(report_to: str) -> None:
    if report_to not in TRACKERS:
        raise ValueError(f"training.report_to: {report_to!r} is not one of {', '.join(TRACKERS)}")
    if report_to != "none":  # each tracker is the package of its name
        try:
            __import__(report_to)
        except ImportError:
            raise RuntimeError(f"training.report_to: {report_to} needs the {report_to} package "
                               f"(pip install {report_to})") from None
