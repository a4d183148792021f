# The held-out judgment test (config `heldout`): split a training set, flag the blamed tokens under the base
# model once (with the shuffled-judgment control), score every run on the held-out items and on the items it
# trained on ({part}: heldout, insample), report the changes and contrasts with bootstrap intervals.


rule split_heldout:
    input:
        f"{RUNS}/data/{{name}}.jsonl",
    output:
        train=f"{RUNS}/heldout/{{name}}/train.jsonl",
        heldout=f"{RUNS}/heldout/{{name}}/heldout.items.jsonl",
        insample=f"{RUNS}/heldout/{{name}}/insample.items.jsonl",
    log:
        f"{RUNS}/logs/split_heldout/{{name}}.log",
    params:
        n=lambda wc: CFG.heldout[wc.name].items,
        train=lambda wc: option("--train-records", CFG.heldout[wc.name].train_records),
        seed=lambda wc: CFG.heldout[wc.name].seed,
    resources:
        **needs(mem_gb=4, hours=1),
    conda:
        ENV
    shell:
        "repro data split --records {input:q} --dataset {wildcards.name} --items {params.n} {params.train} "
        "--seed {params.seed} --train-out {output.train:q} --items-out {output.heldout:q} "
        "--trained-items-out {output.insample:q} > {log:q} 2>&1"


rule blame_heldout:
    input:
        heldout=f"{RUNS}/heldout/{{name}}/{{part}}.items.jsonl",
        weights=lambda wc: model_folder(CFG.heldout[wc.name].blame_model),
    output:
        f"{RUNS}/heldout/{{name}}/{{part}}.blamed.jsonl",
    log:
        f"{RUNS}/logs/blame_heldout/{{name}}/{{part}}.log",
    benchmark:
        f"{RUNS}/benchmarks/blame_heldout/{{name}}/{{part}}.tsv"
    wildcard_constraints:
        part="heldout|insample",
    params:
        model=lambda wc, input: model_path(CFG.heldout[wc.name].blame_model, input.weights),
        threshold=lambda wc: CFG.heldout[wc.name].threshold,
        control=lambda wc: option("--control-seed", CFG.heldout[wc.name].control_seed),
        cutoff=CFG.training.cutoff_len,
        device=DEVICE,
    threads: TORCH_THREADS
    resources:
        **needs(gpu=lambda wc: model_gpus(CFG.heldout[wc.name].blame_model), mem_gb=32, hours=2),
    conda:
        ENV
    shell:
        "repro evaluate blame --model {params.model:q} --items {input.heldout:q} --threshold {params.threshold} "
        "{params.control} --cutoff {params.cutoff} --device {params.device} --out {output:q} > {log:q} 2>&1"


rule score_heldout:
    input:
        unpack(lambda wc: {**generation_inputs(wc.run), "heldout": f"{RUNS}/heldout/{wc.name}/{wc.part}.blamed.jsonl",
                           **({} if wc.run.startswith("base-") or wc.part == "insample" else
                              {"trained": f"{RUNS}/experiments/{wc.run}/instances.jsonl"})}),
    output:
        f"{RUNS}/heldout/{{name}}/scores/{{part}}/{{run}}.json",
    log:
        f"{RUNS}/logs/score_heldout/{{name}}/{{part}}/{{run}}.log",
    benchmark:
        f"{RUNS}/benchmarks/score_heldout/{{name}}/{{part}}/{{run}}.tsv"
    wildcard_constraints:
        part="heldout|insample",
    params:
        model=generation_model,
        adapter=adapter_option,
        trained=lambda wc, input: option("--trained-on", input.get("trained")),
        cutoff=CFG.training.cutoff_len,
        device=DEVICE,
    threads: TORCH_THREADS
    resources:
        **needs(gpu=lambda wc: gpus(wc.run), mem_gb=32, hours=2),
    conda:
        ENV
    shell:
        "repro evaluate heldout --model {params.model:q} {params.adapter} --items {input.heldout:q} {params.trained} "
        "--cutoff {params.cutoff} --device {params.device} --out {output:q} > {log:q} 2>&1"


rule report_heldout:
    input:
        heldout_scores(),
    output:
        table=f"tables/{CFG.profile}/heldout.md",
        csv=f"tables/{CFG.profile}/heldout.csv",
        figure=f"figures/{CFG.profile}/heldout.png",
    log:
        f"{RUNS}/logs/report_heldout.log",
    params:
        config=CONFIG_FILE,
        runs=RUNS,
    resources:
        **needs(mem_gb=4, hours=1),
    conda:
        ENV
    shell:
        "repro report heldout --config {params.config:q} --runs {params.runs:q} --out {output.table:q} "
        "--figure {output.figure:q} > {log:q} 2>&1"
