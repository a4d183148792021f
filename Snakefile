# The CUT reproduction workflow. Every rule calls the `repro` CLI, so each step also runs by hand.
#   snakemake --cores all                                   # the full paper (config/paper.yaml)
#   snakemake --cores 2 --configfile config/smoke.yaml      # the same DAG on a tiny model, CPU, minutes
# A --configfile replaces config/paper.yaml as a whole (it is not merged over it), so a profile's experiments
# never pick up the paper's.
import os

import yaml
from repro.config import config_from_dict, loop_experiment
from repro.data.converters import DATASETS
from repro.data.samples import DATASET_SOURCE
from repro.report.figures import input_files as figure_input_files
from repro.report.tables import table_inputs

PAPER_CONFIG = os.path.join(workflow.basedir, "config", "paper.yaml")
if len(workflow.overwrite_configfiles) > 1:
    raise ValueError("give one --configfile (a profile); put variations in a copy of it")
CONFIG_FILE = workflow.overwrite_configfiles[0] if workflow.overwrite_configfiles else PAPER_CONFIG
if "profile" not in config:
    with open(PAPER_CONFIG) as handle:
        config.update({**yaml.safe_load(handle), **config})
CFG = config_from_dict(config, origin="snakemake config")
RUNS = f"runs/{CFG.profile}"
MIRROR = f"--mirror {CFG.data.mirror}" if CFG.data.mirror else ""


def prepare_options(name):
    """data.limit subsets training sets only; evaluation sets stay whole (the evaluators sample them)."""
    limited = CFG.data.limit is not None and DATASETS.get(name, ("train",))[0] == "train"
    source = f"--generated-samples {GENERATED}" if uses_generated(name) else MIRROR
    return f"{source} --limit {CFG.data.limit}" if limited else source


GENERATED = f"{RUNS}/generated-data"


def uses_generated(dataset):
    return DATASET_SOURCE.get(dataset) in CFG.data.generated


def experiment_records(experiment):
    """The records an experiment trains on: a prepared data set, a live loop's judged responses, or (ILF with
    model refinements) the records refined by the starting model."""
    exp = CFG.experiments[experiment]
    training = CFG.experiment_training(experiment)
    if training.needs_model_refinements:
        return f"{RUNS}/experiments/{experiment}/refined.jsonl"
    if exp.loop:
        return f"{RUNS}/online/{exp.loop}/iter{exp.iteration}/judged.jsonl"
    return f"{RUNS}/data/{exp.dataset}.jsonl"


def experiment_instances():
    return expand(f"{RUNS}/experiments/{{experiment}}/instances.jsonl", experiment=CFG.experiments)


def experiment_outputs():
    adapters = expand(f"{RUNS}/experiments/{{experiment}}/adapter", experiment=CFG.experiments)
    merged = {f"{RUNS}/experiments/{e.init_from}/merged" for e in CFG.experiments.values() if e.init_from}
    return adapters + sorted(merged)


def starting_weights(experiment):
    """Local inputs of an experiment's training: a built model or a merged predecessor ([] for hub models)."""
    path = CFG.base_model_path(experiment, RUNS)
    return [path] if path.startswith(RUNS) else []


def base_model(experiment, input):
    """The starting weights to pass on: the local input when there is one, else the hub id."""
    return input.weights[0] if input.weights else CFG.base_model_path(experiment, RUNS)


def generation_runs():
    """What gets generated from and scored: every base model ("base-<model>") and every trained model except
    AI judges (they write judgments, not answers)."""
    trained = [n for n in CFG.experiments if CFG.experiment_training(n).objective != "ai_judge"]
    return [f"base-{m}" for m in CFG.models] + trained


def summarization_runs():
    """Table 3 / Table 4 (Specialist): the summarization experiments and the base models they start from."""
    experiments = [n for n, e in CFG.experiments.items() if e.dataset.startswith("summarization")]
    bases = sorted({f"base-{CFG.experiments[n].base_model}" for n in experiments})
    return bases + experiments


def generation_inputs(run):
    if run.startswith("base-"):
        name = run.removeprefix("base-")
        return {"weights": [f"{RUNS}/models/{name}"] if CFG.models[name].source != "hub" else []}
    return {"adapter": f"{RUNS}/experiments/{run}/adapter", "weights": starting_weights(run)}


def generation_model(run, input):
    if run.startswith("base-"):
        name = run.removeprefix("base-")
        return input.weights[0] if input.weights else CFG.models[name].path
    return base_model(run, input)


def run_model_key(run):
    """The `models` entry a run generates with: base-<model>, or an experiment's base model."""
    return run.removeprefix("base-") if run.startswith("base-") else CFG.experiments[run].base_model


def gpus(model_key):
    """GPUs one generation / evaluation engine of a model takes (its tensor-parallel size); 0 on CPU."""
    return 0 if CFG.device == "cpu" else CFG.models[model_key].tensor_parallel


def judge_inputs():
    judge = CFG.evaluation.alpaca_eval.judge_model
    return [f"{RUNS}/models/{judge}"] if judge and CFG.models[judge].source != "hub" else []


def judge_option(input):
    judge = CFG.evaluation.alpaca_eval.judge_model
    if judge is None:
        return ""
    return f"--judge-model {input.judge[0] if input.judge else CFG.models[judge].path}"


EVAL_SETS = ["arc-challenge-train", "arc-challenge-test", "hellaswag-validation", "truthfulqa-mc", "mmlu-dev",
             "mmlu-test"]


def generated_models():
    return [f"{RUNS}/models/{name}" for name, spec in CFG.models.items() if spec.source != "hub"]


TABLES = ["table2", "table3", "table4", "table5", "table6"]
FIGURES = ["figure2", "figure3", "figure4", "figure7"]


def report_targets():
    """Tables and figures the profile maps runs onto (config `report`); the paper profile has them all."""
    tables = [f"tables/{CFG.profile}/{t}.md" for t in TABLES if t in CFG.report]
    figures = [f"figures/{CFG.profile}/{f}.png" for f in FIGURES if f in CFG.report]
    return tables + figures


def scored_runs():
    """Runs scored whether or not a table reads them (evaluation.score: all = every run)."""
    return generation_runs() if CFG.evaluation.score == "all" else CFG.evaluation.also_score


rule all:
    input:
        f"{RUNS}/preflight.md",
        report_targets(),
        expand(f"{RUNS}/data/{{name}}.jsonl", name=CFG.data.prepare),
        experiment_instances(),
        experiment_outputs(),
        generated_models(),
        expand(f"{RUNS}/scores/{{run}}/{{benchmark}}.json", run=scored_runs(), benchmark=["alpaca_eval", "lm_eval"]),
        expand(f"{RUNS}/scores/{{run}}/rouge.json", run=summarization_runs() if CFG.evaluation.score == "all" else []),


wildcard_constraints:
    run="[A-Za-z0-9_.-]+",
    experiment="[A-Za-z0-9_.-]+",
    loop="[A-Za-z0-9_.-]+",
    k="[0-9]+",


rule preflight:
    """Every check that needs no GPU and no API key (`repro preflight`); a problem fails the job, so a broken
    configuration stops the workflow in minutes instead of hours into a GPU queue."""
    output:
        f"{RUNS}/preflight.md",
    log:
        f"{RUNS}/logs/preflight.log",
    benchmark:
        f"{RUNS}/benchmarks/preflight.tsv"
    params:
        config=CONFIG_FILE,
        mirror=MIRROR,
    conda:
        "envs/repro.yaml"
    shell:
        "repro preflight --config {params.config} --out {output} {params.mirror} > {log} 2>&1"


rule schema_samples:
    output:
        f"{GENERATED}/GENERATED.json",
    log:
        f"{RUNS}/logs/schema_samples.log",
    benchmark:
        f"{RUNS}/benchmarks/schema_samples.tsv"
    params:
        folder=lambda wc, output: os.path.dirname(output[0]),
    conda:
        "envs/repro.yaml"
    shell:
        "repro data samples --out {params.folder} > {log} 2>&1"


rule prepare_data:
    input:
        lambda wc: [f"{GENERATED}/GENERATED.json"] if uses_generated(wc.name) else [],
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
        lambda wc: experiment_records(wc.experiment),
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
    exp = CFG.experiments[experiment]
    skip = "--skip-empty" if exp.loop else ""  # a model's own answers may be empty
    subset = f"--instructions {exp.instructions}" if exp.instructions else ""
    return f"{ratio} --seed {training.seed} --objective {training.objective} {skip} {subset}"


rule refine:
    input:
        records=lambda wc: f"{RUNS}/data/{CFG.experiments[wc.experiment].dataset}.jsonl",
        weights=lambda wc: starting_weights(wc.experiment),
    output:
        f"{RUNS}/experiments/{{experiment}}/refined.jsonl",
    log:
        f"{RUNS}/logs/refine/{{experiment}}.log",
    benchmark:
        f"{RUNS}/benchmarks/refine/{{experiment}}.tsv"
    params:
        config=CONFIG_FILE,
        model=lambda wc, input: base_model(wc.experiment, input),
    resources:
        gpu=lambda wc: 0 if CFG.device == "cpu" else 1,
    conda:
        "envs/repro.yaml"
    shell:
        "repro refine --config {params.config} --model {params.model} --records {input.records} --out {output} "
        "> {log} 2>&1"


# ---------------------------------------------------------------- online loops (live): draw, generate, judge

def loop_iteration(wc):
    """The experiment that iteration k of a loop trains (model k)."""
    return loop_experiment(wc.loop, int(wc.k))


def draw_exclusions(wc):
    """Instructions never to draw: the configured data sets and every earlier iteration of this loop."""
    earlier = [f"{RUNS}/online/{wc.loop}/iter{j}/instructions.jsonl" for j in range(1, int(wc.k))]
    return [f"{RUNS}/data/{name}.jsonl" for name in CFG.online.exclude] + earlier


rule draw_instructions:
    input:
        pool=f"{RUNS}/data/{CFG.online.pool}.jsonl",
        exclude=draw_exclusions,
    output:
        f"{RUNS}/online/{{loop}}/iter{{k}}/instructions.jsonl",
    log:
        f"{RUNS}/logs/draw_instructions/{{loop}}-iter{{k}}.log",
    benchmark:
        f"{RUNS}/benchmarks/draw_instructions/{{loop}}-iter{{k}}.tsv"
    params:
        n=CFG.online.instructions_per_iteration,
        seed=CFG.online.seed,
    conda:
        "envs/repro.yaml"
    shell:
        "repro online draw --pool {input.pool} --exclude {input.exclude} --n {params.n} --seed {params.seed} "
        "--label {wildcards.loop}-iter{wildcards.k} --out {output} 2> {log}"


rule generate_online:
    input:
        prompts=f"{RUNS}/online/{{loop}}/iter{{k}}/instructions.jsonl",
        weights=lambda wc: starting_weights(loop_iteration(wc)),
    output:
        f"{RUNS}/online/{{loop}}/iter{{k}}/responses.jsonl",
    log:
        f"{RUNS}/logs/generate_online/{{loop}}-iter{{k}}.log",
    benchmark:
        f"{RUNS}/benchmarks/generate_online/{{loop}}-iter{{k}}.tsv"
    params:
        config=CONFIG_FILE,
        model=lambda wc, input: base_model(loop_iteration(wc), input),
    resources:
        gpu=lambda wc: 0 if CFG.device == "cpu" else 1,
    conda:
        "envs/repro.yaml"
    shell:
        "repro generate --config {params.config} --model {params.model} --prompts {input.prompts} "
        "--generator model-k-minus-1 --out {output} --no-progress > {log} 2>&1"


def judge_weights(wc):
    """Local inputs of a loop's judge: a built model folder and, for an AI judge, its trained adapter."""
    spec = CFG.judges[CFG.online.loops[wc.loop].judge]
    if spec.kind == "openai":
        return {}
    inputs = {}
    if CFG.models[spec.model].source != "hub":
        inputs["judge_model"] = f"{RUNS}/models/{spec.model}"
    if spec.kind == "ai_judge":
        inputs["judge_adapter"] = f"{RUNS}/experiments/{spec.adapter_experiment}/adapter"
    return inputs


def judge_options(wc, input):
    spec = CFG.judges[CFG.online.loops[wc.loop].judge]
    options = []
    if spec.kind != "openai":
        options.append(f"--model {input.judge_model if 'judge_model' in input.keys() else CFG.models[spec.model].path}")
    if spec.kind == "ai_judge":
        options.append(f"--adapter {input.judge_adapter}")
    return " ".join(options)


rule judge_online:
    input:
        unpack(judge_weights),
        responses=f"{RUNS}/online/{{loop}}/iter{{k}}/responses.jsonl",
    output:
        f"{RUNS}/online/{{loop}}/iter{{k}}/judged.jsonl",
    log:
        f"{RUNS}/logs/judge_online/{{loop}}-iter{{k}}.log",
    benchmark:
        f"{RUNS}/benchmarks/judge_online/{{loop}}-iter{{k}}.tsv"
    params:
        config=CONFIG_FILE,
        judge=lambda wc: CFG.online.loops[wc.loop].judge,
        # not an output: the judgments already paid for survive a failed or repeated job
        cache=lambda wc: f"{RUNS}/online/{wc.loop}/iter{wc.k}/judge_cache.jsonl",
        options=judge_options,
    resources:
        gpu=lambda wc: 0 if CFG.judges[CFG.online.loops[wc.loop].judge].kind == "openai" or CFG.device == "cpu" else 1,
    conda:
        "envs/repro.yaml"
    shell:
        "repro judge --config {params.config} --judge {params.judge} --inputs {input.responses} --out {output} "
        "--cache {params.cache} {params.options} > {log} 2>&1"


rule build_model:
    output:
        directory(f"{RUNS}/models/{{model}}"),
    log:
        f"{RUNS}/logs/build_model/{{model}}.log",
    benchmark:
        f"{RUNS}/benchmarks/build_model/{{model}}.tsv"
    params:
        source=lambda wc: CFG.models[wc.model].source,
        mirror=MIRROR,
    conda:
        "envs/repro.yaml"
    shell:
        "repro model build {params.source} {output} {params.mirror} > {log} 2>&1"


rule train:
    input:
        instances=f"{RUNS}/experiments/{{experiment}}/instances.jsonl",
        weights=lambda wc: starting_weights(wc.experiment),
    output:
        directory(f"{RUNS}/experiments/{{experiment}}/adapter"),
    log:
        f"{RUNS}/logs/train/{{experiment}}.log",
    benchmark:
        f"{RUNS}/benchmarks/train/{{experiment}}.tsv"
    params:
        config=CONFIG_FILE,
        base=lambda wc, input: base_model(wc.experiment, input),
        mirror=MIRROR,
    resources:
        gpu=lambda wc: 0 if CFG.device == "cpu" else 1,
    conda:
        "envs/repro.yaml"
    shell:
        "repro train --config {params.config} --experiment {wildcards.experiment} --base-model {params.base} "
        "--instances {input.instances} --out {output} --resume --no-progress {params.mirror} > {log} 2>&1"


rule merge:
    input:
        adapter=f"{RUNS}/experiments/{{experiment}}/adapter",
        weights=lambda wc: starting_weights(wc.experiment),
    output:
        directory(f"{RUNS}/experiments/{{experiment}}/merged"),
    log:
        f"{RUNS}/logs/merge/{{experiment}}.log",
    benchmark:
        f"{RUNS}/benchmarks/merge/{{experiment}}.tsv"
    params:
        base=lambda wc, input: base_model(wc.experiment, input),
        dtype=CFG.online.merge_dtype,
    conda:
        "envs/repro.yaml"
    shell:
        "repro merge --base-model {params.base} --adapter {input.adapter} --out {output} --dtype {params.dtype} "
        "> {log} 2>&1"


rule generate_alpaca_eval:
    input:
        unpack(lambda wc: generation_inputs(wc.run)),
    output:
        outputs=f"{RUNS}/generations/{{run}}/alpaca_eval.json",
        manifest=f"{RUNS}/generations/{{run}}/alpaca_eval.json.manifest.json",
    log:
        f"{RUNS}/logs/generate/{{run}}.log",
    benchmark:
        f"{RUNS}/benchmarks/generate/{{run}}.tsv"
    params:
        config=CONFIG_FILE,
        model=lambda wc, input: generation_model(wc.run, input),
        adapter=lambda wc, input: f"--adapter {input.adapter}" if "adapter" in input.keys() else "",
        limit=f"--limit {CFG.evaluation.alpaca_eval.limit}" if CFG.evaluation.alpaca_eval.limit else "",
        mirror=MIRROR,
        tp=lambda wc: CFG.models[run_model_key(wc.run)].tensor_parallel,
    resources:
        gpu=lambda wc: gpus(run_model_key(wc.run)),
    conda:
        "envs/repro.yaml"
    shell:
        "repro generate --config {params.config} --model {params.model} {params.adapter} --prompts alpaca_eval "
        "--generator {wildcards.run} --out {output.outputs} {params.limit} {params.mirror} --tensor-parallel {params.tp} "
        "--no-progress > {log} 2>&1"


rule alpaca_eval:
    input:
        outputs=f"{RUNS}/generations/{{run}}/alpaca_eval.json",
        judge=judge_inputs(),
    output:
        f"{RUNS}/scores/{{run}}/alpaca_eval.json",
    log:
        f"{RUNS}/logs/alpaca_eval/{{run}}.log",
    benchmark:
        f"{RUNS}/benchmarks/alpaca_eval/{{run}}.tsv"
    params:
        cache=lambda wc, output: os.path.join(os.path.dirname(output[0]), "alpaca_eval_cache"),
        annotator=CFG.evaluation.alpaca_eval.annotator,
        version=CFG.evaluation.alpaca_eval.version,
        judge=lambda wc, input: judge_option(input),
        lc="--length-controlled" if CFG.evaluation.alpaca_eval.length_controlled else "",
        mirror=MIRROR,
    conda:
        "envs/repro.yaml"
    shell:
        "repro evaluate alpaca-eval --model-outputs {input.outputs} --out {output} --cache {params.cache} "
        "--annotator {params.annotator} --version {params.version} {params.judge} {params.lc} {params.mirror} "
        "> {log} 2>&1"


rule lm_eval:
    input:
        unpack(lambda wc: generation_inputs(wc.run)),
        data=expand(f"{RUNS}/data/{{name}}.jsonl", name=EVAL_SETS),
    output:
        f"{RUNS}/scores/{{run}}/lm_eval.json",
    log:
        f"{RUNS}/logs/lm_eval/{{run}}.log",
    benchmark:
        f"{RUNS}/benchmarks/lm_eval/{{run}}.tsv"
    params:
        config=CONFIG_FILE,
        model=lambda wc, input: generation_model(wc.run, input),
        adapter=lambda wc, input: f"--adapter {input.adapter}" if "adapter" in input.keys() else "",
        data=lambda wc, input: os.path.dirname(input.data[0]),
        device="cpu" if CFG.device == "cpu" else "cuda",
        tp=lambda wc: CFG.models[run_model_key(wc.run)].tensor_parallel,
    resources:
        gpu=lambda wc: gpus(run_model_key(wc.run)),
    conda:
        "envs/repro.yaml"
    shell:
        "repro evaluate lm-eval --config {params.config} --model {params.model} {params.adapter} "
        "--data {params.data} --device {params.device} --tensor-parallel {params.tp} --out {output} > {log} 2>&1"


rule generate_summaries:
    input:
        unpack(lambda wc: generation_inputs(wc.run)),
        prompts=f"{RUNS}/data/summarization-test.jsonl",
    output:
        outputs=f"{RUNS}/generations/{{run}}/summarization-test.jsonl",
        manifest=f"{RUNS}/generations/{{run}}/summarization-test.jsonl.manifest.json",
    log:
        f"{RUNS}/logs/generate_summaries/{{run}}.log",
    benchmark:
        f"{RUNS}/benchmarks/generate_summaries/{{run}}.tsv"
    params:
        config=CONFIG_FILE,
        model=lambda wc, input: generation_model(wc.run, input),
        adapter=lambda wc, input: f"--adapter {input.adapter}" if "adapter" in input.keys() else "",
        tp=lambda wc: CFG.models[run_model_key(wc.run)].tensor_parallel,
    resources:
        gpu=lambda wc: gpus(run_model_key(wc.run)),
    conda:
        "envs/repro.yaml"
    shell:
        "repro generate --config {params.config} --model {params.model} {params.adapter} --prompts {input.prompts} "
        "--generator {wildcards.run} --out {output.outputs} --tensor-parallel {params.tp} --no-progress > {log} 2>&1"


rule rouge:
    input:
        predictions=f"{RUNS}/generations/{{run}}/summarization-test.jsonl",
        references=f"{RUNS}/data/summarization-test.jsonl",
    output:
        f"{RUNS}/scores/{{run}}/rouge.json",
    log:
        f"{RUNS}/logs/rouge/{{run}}.log",
    benchmark:
        f"{RUNS}/benchmarks/rouge/{{run}}.tsv"
    params:
        field=CFG.evaluation.rouge.reference_field,
        stemmer="" if CFG.evaluation.rouge.use_stemmer else "--no-stemmer",
    conda:
        "envs/repro.yaml"
    shell:
        "repro evaluate rouge --predictions {input.predictions} --references {input.references} "
        "--reference-field {params.field} {params.stemmer} --out {output} > {log} 2>&1"


# ---------------------------------------------------------------- tables and figures (read scores only)

rule table:
    input:
        lambda wc: table_inputs(wc.table, CFG, RUNS),
    output:
        md=report(f"tables/{CFG.profile}/{{table}}.md", category="Tables"),
        csv=f"tables/{CFG.profile}/{{table}}.csv",
        tex=f"tables/{CFG.profile}/{{table}}.tex",
    log:
        f"{RUNS}/logs/table/{{table}}.log",
    benchmark:
        f"{RUNS}/benchmarks/table/{{table}}.tsv"
    params:
        config=CONFIG_FILE,
        runs=RUNS,
        mirror=MIRROR,
    wildcard_constraints:
        table="table[2-6]",
    conda:
        "envs/repro.yaml"
    shell:
        "repro report table {wildcards.table} --config {params.config} --runs {params.runs} --out {output.md} "
        "{params.mirror} > {log} 2>&1"


def figure_inputs(wc):
    if wc.figure == "figure2":
        run = CFG.report["figure2"]["run"]
        return [f"{RUNS}/experiments/{run}/adapter", f"{RUNS}/experiments/{run}/instances.jsonl"] + starting_weights(run)
    return figure_input_files(wc.figure, CFG, RUNS)


rule figure:
    input:
        figure_inputs,
    output:
        png=report(f"figures/{CFG.profile}/{{figure}}.png", category="Figures"),
        pdf=f"figures/{CFG.profile}/{{figure}}.pdf",
    log:
        f"{RUNS}/logs/figure/{{figure}}.log",
    benchmark:
        f"{RUNS}/benchmarks/figure/{{figure}}.tsv"
    params:
        config=CONFIG_FILE,
        runs=RUNS,
        mirror=MIRROR,
    wildcard_constraints:
        figure="figure[2-7]",
    conda:
        "envs/repro.yaml"
    shell:
        "repro report figure {wildcards.figure} --config {params.config} --runs {params.runs} --out {output.png} "
        "{params.mirror} > {log} 2>&1"
