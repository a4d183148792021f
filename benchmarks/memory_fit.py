"""The memory estimator (repro/check/memory.py) against every peak measured on a GPU (repro/calibration/*.yaml), as the
table in docs/preflight.md: estimate, measured, ratio. No GPU needed.

    python benchmarks/memory_fit.py
"""
from __future__ import annotations

from repro import calibration
from repro.check.memory import Arch, measured_estimate


def main() -> None:
    print("| GPU | model (layers, hidden, vocabulary) | fine-tuning | loss | sequences x tokens | estimate GiB | "
          "measured GiB | estimate / measured |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for gpu in calibration.gpus():
        for entry in calibration.load(gpu).memory:
            arch = Arch(*entry["arch"])
            estimate = measured_estimate(entry)
            ratio = estimate / entry["peak_gib"]
            worst = max(worst, abs(ratio - 1))
            print(f"| {gpu} | {arch.layers}, {arch.hidden}, {arch.vocab} | {entry['finetune']} | {entry['loss']} | "
                  f"{entry['rows']} x {entry['tokens']} | {estimate:.1f} | {entry['peak_gib']:.1f} | {ratio:.3f} |")
    print(f"largest error: {worst:.1%}")


if __name__ == "__main__":
    main()
