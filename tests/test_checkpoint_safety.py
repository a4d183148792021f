"""Resuming reads checkpoints without executing anything they hold (issue: a crafted step-*.pt ran a command)."""
from __future__ import annotations

import os

import pytest
import torch

from repro.cut.train import load_checkpoint


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"step": 3, "model": RunsACommand(marker)}, folder / "step-3.pt")
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    with pytest.raises(ValueError, match="step-3.pt: not a checkpoint this project wrote"):
        load_checkpoint(folder, model, optimizer, scheduler, {})
    assert not marker.exists()
