"""Loading models: a causal LM from a folder or hub id, a LoRA adapter on it (checked against the base it was
trained on), and the dtype names of the config."""
from __future__ import annotations

from pathlib import Path

from repro.io import check_model_path


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
