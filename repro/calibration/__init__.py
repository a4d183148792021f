"""Measured GPU throughput and memory, one YAML file per GPU kind (repro/calibration/<GPU>.yaml).

Every figure is a `Figure`: a value and where it comes from, either `measured` (where, when, at what shape) or
`extrapolated` (from what). A GPU with no measurements of its own names the GPU it `extrapolate_from`s; its
figures are then that GPU's, relabelled as extrapolated. `repro plan`, `repro/check/memory.py` and `repro preflight`
read these files; benchmarks/gpu_paper_step.py writes measured ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import combinations
from pathlib import Path

import yaml

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Figure:
    value: float
    measured: bool
    source: str

    @property
    def label(self) -> str:
        return f"{'measured' if self.measured else 'extrapolated'}: {self.source}"


@dataclass(frozen=True)
class Calibration:
    gpu: str
    peak_flops: float
    memory_gib: float
    bandwidth: float  # bytes/s
    phases: dict[str, Figure]  # MFU by phase (decode: the bandwidth efficiency)
    factors: dict[str, Figure]  # multipliers of a training MFU: checkpointing, 8bit
    memory: tuple[dict, ...]  # measured training peaks

    def train_mfu(self, finetune: str, checkpointing: bool, eight_bit: bool) -> Figure:
        """The MFU of a training step: the most specific key measured, times the factors for what it lacks."""
        wanted = [name for name, on in (("checkpointing", checkpointing), ("8bit", eight_bit)) if on]
        for size in range(len(wanted), -1, -1):
            for subset in combinations(wanted, size):
                key = "_".join([f"train_{finetune}", *subset])
                if key not in self.phases:
                    continue
                figure, missing = self.phases[key], [name for name in wanted if name not in subset]
                if not missing:
                    return figure
                value = figure.value
                for name in missing:
                    value *= self.factors[name].value
                parts = "; ".join(f"x {self.factors[n].value:g} for {n} ({self.factors[n].label})" for n in missing)
                return Figure(value, False, f"{key} {figure.value:g} ({figure.label}); {parts}")
        raise KeyError(f"{self.gpu}: no training phase 'train_{finetune}' in its calibration file")


def _figure(entry: dict, key: str, where: str) -> Figure:
    measured = "measured" in entry
    if measured == ("extrapolated" in entry):
        raise ValueError(f"{where}: say either `measured` or `extrapolated`")
    return Figure(float(entry[key]), measured, str(entry["measured" if measured else "extrapolated"]))


def _relabel(figure: Figure, donor: str) -> Figure:
    return Figure(figure.value, False, f"{donor}'s figure carried over ({figure.label})")


@cache
def load(gpu: str, folder: Path = HERE) -> Calibration:
    path = Path(folder) / f"{gpu}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in Path(folder).glob("*.yaml")))
        raise ValueError(f"no calibration for GPU '{gpu}' ({path}); known: {known}")
    raw = yaml.safe_load(path.read_text())
    donor = raw.get("extrapolate_from")
    if donor:
        base = load(donor)
        phases = {k: _relabel(v, donor) for k, v in base.phases.items()}
        factors = {k: _relabel(v, donor) for k, v in base.factors.items()}
        memory: tuple = ()
    else:
        phases = {name: _figure(e, "bandwidth_efficiency" if name == "decode" else "mfu", f"{path}: phases.{name}")
                  for name, e in raw["phases"].items()}
        factors = {name: _figure(e, "factor", f"{path}: factors.{name}") for name, e in raw["factors"].items()}
        memory = tuple(raw.get("memory", ()))
    return Calibration(raw["gpu"], float(raw["peak_bf16_tflops"]) * 1e12, float(raw["memory_gib"]),
                       float(raw["bandwidth_tb_s"]) * 1e12, phases, factors, memory)


def gpus() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))
