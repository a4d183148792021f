# The CUT reproduction workflow. Every rule calls the `repro` CLI, so each step also runs by hand.
#   snakemake --cores all                                   # the full paper (config/paper.yaml)
#   snakemake --cores 2 --configfile config/smoke.yaml      # the same DAG on a tiny model, CPU, minutes
# A --configfile replaces config/paper.yaml as a whole (it is not merged over it), so a profile's experiments
# never pick up the paper's.
import os

import yaml
from repro.config import config_from_dict
from repro.data.converters import DATASETS

if "profile" not in config:
    with open(os.path.join(workflow.basedir, "config", "paper.yaml")) as handle:
        config.update({**yaml.safe_load(handle), **config})
CFG = config_from_dict(config, origin="snakemake config")
RUNS = f"runs/{CFG.profile}"
MIRROR = f"--mirror {CFG.data.mirror}" if CFG.data.mirror else ""


def prepare_options(name):
    """data.limit subsets training sets only; evaluation sets stay whole (the evaluators sample them)."""
    limited = CFG.data.limit is not None and DATASETS.get(name, ("train",))[0] == "train"
    return f"{MIRROR} --limit {CFG.data.limit}" if limited else MIRROR


def experiment_instances():
    return expand(f"{RUNS}/experiments/{{experiment}}/instances.jsonl", experiment=CFG.experiments)


def generated_models():
    return [f"{RUNS}/models/{name}" for name, spec in CFG.models.items() if spec.source != "hub"]


rule all:
    input:
        expand(f"{RUNS}/data/{{name}}.jsonl", name=CFG.data.prepare),
        experiment_instances(),
        generated_models(),


rule prepare_data:
    output:
        rows=f"{RUNS}/data/{{name}}.jsonl",
        meta=f"{RUNS}/data/{{name}}.meta.json",
    log:
        f"{RUNS}/logs/prepare_data/{{name}}.log",
    benchmark:
        f"{RUNS}/benchmarks/prepare_data/{{name}}.tsv"
    params:
        options=lambda wc: prepare_options(wc.name),
    conda:
        "envs/repro.yaml"
    shell:
        "repro data prepare {wildcards.name} --out {output.rows} {params.options} 2> {log}"


rule build_instances:
    input:
        lambda wc: f"{RUNS}/data/{CFG.experiments[wc.experiment].dataset}.jsonl",
    output:
        rows=f"{RUNS}/experiments/{{experiment}}/instances.jsonl",
        meta=f"{RUNS}/experiments/{{experiment}}/instances.meta.json",
    log:
        f"{RUNS}/logs/build_instances/{{experiment}}.log",
    benchmark:
        f"{RUNS}/benchmarks/build_instances/{{experiment}}.tsv"
    params:
        dataset=lambda wc: CFG.experiments[wc.experiment].dataset,
        options=lambda wc: _instance_options(wc.experiment),
    conda:
        "envs/repro.yaml"
    shell:
        "repro data instances {params.dataset} --records {input} --out {output.rows} {params.options} 2> {log}"


def _instance_options(experiment):
    training = CFG.experiment_training(experiment)
    ratio = "" if training.downsample is None else f"--downsample {training.downsample}"
    return f"{ratio} --seed {training.seed}"


rule build_model:
    output:
        directory(f"{RUNS}/models/{{model}}"),
    log:
        f"{RUNS}/logs/build_model/{{model}}.log",
    benchmark:
        f"{RUNS}/benchmarks/build_model/{{model}}.tsv"
    params:
        source=lambda wc: CFG.models[wc.model].source,
    conda:
        "envs/repro.yaml"
    shell:
        "repro model build {params.source} {output} > {log} 2>&1"
