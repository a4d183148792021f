# Helpers shared by the stage files: paths, the starting weights of a run, shell options. No rules here.
import os
import shlex

from repro.config import loop_experiment
from repro.data.converters import DATASETS
from repro.data.samples import DATASET_SOURCE
from repro.evaluate.lm_eval_run import EVAL_SETS
from repro.report.figures import FIGURES
from repro.report.figures import input_files as figure_input_files
from repro.report.needs import lm_eval_tasks
from repro.report.tables import TABLES, table_inputs

ENV = os.path.join(workflow.basedir, "envs", "repro.yaml")
GPU = 0 if CFG.device == "cpu" else 1  # GPUs of a training job
DEVICE = "cpu" if CFG.device == "cpu" else "cuda"  # where a scoring job runs
GENERATED = f"{RUNS}/generated-data"


def option(flag, value):
    """`flag value` with the value shell-quoted; nothing for None / False; the bare flag for True."""
    if value is None or value is False:
        return ""
    return flag if value is True else f"{flag} {shlex.quote(str(value))}"


MIRROR = option("--mirror", CFG.data.mirror)


# ------------------------------------------------------------------ threads and cluster resources
# Without `threads:` Snakemake gives every job OMP_NUM_THREADS=1. A torch job takes all cores up to
# cluster.max_threads on a cluster or a GPU host (Snakemake caps it at --cores); on a CPU host two torch jobs share
# the cores half and half, since the CPU profiles' small models are bound by Python as much as by arithmetic.
ON_CLUSTER = workflow.nodes is not None  # --jobs / an executor profile: threads are asked of the scheduler
if ON_CLUSTER:
    TORCH_THREADS = CFG.cluster.max_threads
elif GPU:
    TORCH_THREADS = min(CFG.cluster.max_threads, workflow.cores)
else:
    TORCH_THREADS = max(1, min(CFG.cluster.max_threads, workflow.cores // 2))


def needs(gpu=0, mem_gb=8, hours=2):
    """A job's resources, declared by its rule: GPUs (a number, or a function of the wildcards), memory and
    time; the partition follows from the GPUs, so a job that loads a model on a GPU lands on a GPU node. The
    figures are the paper's (13B models); profiles/slurm maps names only, and `set-resources` there overrides."""
    count = gpu if callable(gpu) else (lambda wildcards: gpu)
    return {
        "gpu": count,
        "slurm_partition": lambda wildcards: CFG.cluster.gpu_partition if count(wildcards) else CFG.cluster.cpu_partition,
        "mem_mb": int(mem_gb * 1000),
        "runtime": int(hours * 60),
    }


# ------------------------------------------------------------------ data

def uses_generated(dataset):
    return DATASET_SOURCE.get(dataset) in CFG.data.generated


def prepare_options(name):
    """data.limit subsets training sets only; evaluation sets stay whole (the evaluators sample them)."""
    limited = CFG.data.limit is not None and DATASETS.get(name, ("train",))[0] == "train"
    source = option("--generated-samples", GENERATED) if uses_generated(name) else MIRROR
    return f"{source} {option('--limit', CFG.data.limit)}" if limited else source


def experiment_records(experiment):
    """The records an experiment trains on: a prepared data set, a live loop's judged responses, or (ILF with
    model refinements) the records refined by the starting model."""
    exp = CFG.experiments[experiment]
    if CFG.experiment_training(experiment).needs_model_refinements:
        return f"{RUNS}/experiments/{experiment}/refined.jsonl"
    if exp.loop:
        return f"{RUNS}/online/{exp.loop}/iter{exp.iteration}/judged.jsonl"
    return dataset_records(exp.dataset)


def dataset_records(dataset):
    """A prepared training set, or its training part where config `heldout` splits it."""
    if dataset in CFG.heldout:
        return f"{RUNS}/heldout/{dataset}/train.jsonl"
    return f"{RUNS}/data/{dataset}.jsonl"


def instance_options(experiment):
    training = CFG.experiment_training(experiment)
    exp = CFG.experiments[experiment]
    return " ".join(filter(None, [
        option("--downsample", training.downsample), option("--seed", training.seed),
        option("--objective", training.objective),
        option("--kto-refinements", training.objective == "kto" and training.kto.refinements_as_desirable),
        option("--skip-empty", bool(exp.loop)),  # a model's own answers may be empty
        option("--instructions", exp.instructions)]))


# ------------------------------------------------------------------ models and runs

def starting_weights(experiment):
    """Local inputs of an experiment's training: a built model or a merged predecessor ([] for hub models)."""
    path = CFG.base_model_path(experiment, RUNS)
    return [path] if path.startswith(RUNS) else []


def base_model(experiment, input):
    """The starting weights to pass on: the local input when there is one, else the hub id."""
    return input.weights[0] if input.weights else CFG.base_model_path(experiment, RUNS)


def built_models():
    return [f"{RUNS}/models/{name}" for name, spec in CFG.models.items() if spec.source != "hub"]


def model_folder(name):
    """A model's weights among a job's inputs (its built folder; [] for hub models, which transformers fetches)."""
    return [f"{RUNS}/models/{name}"] if CFG.models[name].source != "hub" else []


def model_path(name, input_folders):
    return input_folders[0] if input_folders else CFG.models[name].path


def run_model_key(run):
    """The `models` entry a run generates with: base-<model>, or an experiment's base model."""
    return run.removeprefix("base-") if run.startswith("base-") else CFG.experiments[run].base_model


def model_gpus(model):
    """GPUs one engine of a model takes (its tensor-parallel size); 0 on CPU."""
    return 0 if CFG.device == "cpu" else CFG.models[model].tensor_parallel


def gpus(run):
    """GPUs a run's generation / evaluation engine takes: its model's."""
    return model_gpus(run_model_key(run))


def tensor_parallel(wildcards):
    return CFG.models[run_model_key(wildcards.run)].tensor_parallel


def generation_inputs(run):
    if run.startswith("base-"):
        return {"weights": model_folder(run.removeprefix("base-"))}
    return {"adapter": f"{RUNS}/experiments/{run}/adapter", "weights": starting_weights(run)}


def generation_model(wildcards, input):
    run = wildcards.run
    if run.startswith("base-"):
        return model_path(run.removeprefix("base-"), input.weights)
    return base_model(run, input)


# Generation prompt sets: the file name under generations/<run>/ -> the prepared prompts `repro generate` reads
PROMPT_SETS = {"alpaca_eval.json": "alpaca_eval", "summarization-test.jsonl": "summarization-test"}


def prompt_file(wildcards):
    """The prepared prompts a generation reads ([] for AlpacaEval, which `repro generate` resolves itself)."""
    name = PROMPT_SETS[wildcards.prompts]
    return [] if name == "alpaca_eval" else [f"{RUNS}/data/{name}.jsonl"]


def prompts_option(wildcards, input):
    return input.prompts[0] if input.prompts else PROMPT_SETS[wildcards.prompts]


def limit_option(wildcards):
    return option("--limit", CFG.evaluation.alpaca_eval.limit) if wildcards.prompts == "alpaca_eval.json" else ""


def adapter_option(wildcards, input):
    return option("--adapter", input.adapter) if "adapter" in input.keys() else ""


def experiment_outputs():
    adapters = expand(f"{RUNS}/experiments/{{experiment}}/adapter", experiment=CFG.experiments)
    merged = {f"{RUNS}/experiments/{e.init_from}/merged" for e in CFG.experiments.values() if e.init_from}
    return adapters + sorted(merged)


def lm_eval_task_option(wildcards):
    """The lm-eval tasks a run's cells show (Figure 7's runs: TruthfulQA only)."""
    return "--tasks " + " ".join(lm_eval_tasks(CFG, wildcards.run))


# ------------------------------------------------------------------ online loops

def loop_iteration(wildcards):
    """The experiment that iteration k of a loop trains (model k)."""
    return loop_experiment(wildcards.loop, int(wildcards.k))


def draw_exclusions(wildcards):
    """Instructions never to draw: the configured data sets and every earlier iteration of this loop."""
    earlier = [f"{RUNS}/online/{wildcards.loop}/iter{j}/instructions.jsonl" for j in range(1, int(wildcards.k))]
    return [f"{RUNS}/data/{name}.jsonl" for name in CFG.online.exclude] + earlier


def loop_judge(wildcards):
    return CFG.judges[CFG.online.loops[wildcards.loop].judge]


def judge_weights(wildcards):
    """Local inputs of a loop's judge: a built model folder and, for an AI judge, its trained adapter."""
    spec = loop_judge(wildcards)
    if spec.kind == "openai":
        return {}
    inputs = {"judge_model": model_folder(spec.model)}
    if spec.kind == "ai_judge":
        inputs["judge_adapter"] = f"{RUNS}/experiments/{spec.adapter_experiment}/adapter"
    return inputs


def online_judge_gpus(wildcards):
    """GPT-4 judges from a CPU node with internet; a local or AI judge loads its model on GPUs."""
    spec = loop_judge(wildcards)
    return 0 if spec.kind == "openai" else model_gpus(spec.model)


def judge_options(wildcards, input):
    spec = loop_judge(wildcards)
    if spec.kind == "openai":
        return ""
    adapter = option("--adapter", input.judge_adapter) if spec.kind == "ai_judge" else ""
    return f"{option('--model', model_path(spec.model, input.judge_model))} {adapter}"


# ------------------------------------------------------------------ scoring and reporting

def annotator_model():
    """AlpacaEval's local judge among a job's inputs ([] for GPT-4 or a hub model)."""
    judge = CFG.evaluation.alpaca_eval.judge_model
    return model_folder(judge) if judge else []


def local_alpaca_judge(wildcards):
    """AlpacaEval 1.0 judged by a local model (config evaluation.alpaca_eval.judge_model), not by the API."""
    return wildcards.benchmark == "alpaca_eval" and bool(CFG.evaluation.alpaca_eval.judge_model)


def alpaca_judge_gpus(wildcards):
    return model_gpus(CFG.evaluation.alpaca_eval.judge_model) if local_alpaca_judge(wildcards) else 0


def annotator_option(wildcards, input):
    judge = CFG.evaluation.alpaca_eval.judge_model
    return option("--judge-model", model_path(judge, input.judge)) if judge else ""


def alpaca_eval_options(wildcards):
    """The annotator, version and reference of AlpacaEval 1.0 (`alpaca_eval`) or 2.0 LC (`alpaca_eval_2`)."""
    if wildcards.benchmark == "alpaca_eval_2":
        settings = CFG.evaluation.alpaca_eval_2
        return " ".join(filter(None, [option("--annotator", settings.annotator), option("--version", "2.0"),
                                      "--length-controlled", option("--limit", settings.limit)]))
    settings = CFG.evaluation.alpaca_eval
    return " ".join(filter(None, [option("--annotator", settings.annotator), option("--version", settings.version),
                                  option("--length-controlled", settings.length_controlled)]))


def agreement_file():
    """A local AlpacaEval judge's measured agreement with GPT-4, which the tables' footnote quotes ([] for GPT-4)."""
    return [f"{RUNS}/judge_agreement/alpaca_eval.json"] if CFG.evaluation.alpaca_eval.judge_model else []


def heldout_scores():
    """Every held-out score file the heldout report reads: each run on a split data set and its base, on the
    held-out items and (split.insample) on the training part."""
    from repro.report.heldout import heldout_runs, parts, score_path

    files = []
    for dataset, split in CFG.heldout.items():
        for part in parts(split):
            for run, base in heldout_runs(CFG, dataset):
                files += [str(score_path(RUNS, dataset, part, run)), str(score_path(RUNS, dataset, part, base))]
    return sorted(set(files))


def report_targets():
    """Tables and figures the profile maps runs onto (config `report`); the paper profile has them all."""
    tables = [f"tables/{CFG.profile}/{t}.md" for t in TABLES if t in CFG.report]
    figures = [f"figures/{CFG.profile}/{f}.png" for f in FIGURES if f in CFG.report]
    heldout = [f"tables/{CFG.profile}/heldout.md"] if CFG.heldout else []
    curves = [f"figures/{CFG.profile}/curves"] if CFG.experiments else []
    return tables + figures + heldout + curves


def figure_inputs(wildcards):
    if wildcards.figure == "figure2":
        run = CFG.report["figure2"]["run"]
        return [f"{RUNS}/experiments/{run}/adapter", f"{RUNS}/experiments/{run}/instances.jsonl",
                *starting_weights(run)]
    return figure_input_files(wildcards.figure, CFG, RUNS)
