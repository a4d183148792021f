# The held-out judgment test (config `heldout`): split a training set, flag the blamed tokens under the base
# model once, score every run on the held-out items, report the changes with bootstrap intervals.


rule split_heldout:
    input:
        f"{RUNS}/data/{{name}}.jsonl",
    output:
        train=f"{RUNS}/heldout/{{name}}/train.jsonl",
        heldout=f"{RUNS}/heldout/{{name}}/items.jsonl",
    log:
        f"{RUNS}/logs/split_heldout/{{name}}.log",
    params:
        n=lambda wc: CFG.heldout[wc.name].items,
        train=lambda wc: option("--train-records", CFG.heldout[wc.name].train_records),
        seed=lambda wc: CFG.heldout[wc.name].seed,
    conda:
        ENV
    shell:
        "repro data split --records {input:q} --dataset {wildcards.name} --items {params.n} {params.train} "
        "--seed {params.seed} --train-out {output.train:q} --items-out {output.heldout:q} 2> {log:q}"


rule blame_heldout:
    input:
        heldout=f"{RUNS}/heldout/{{name}}/items.jsonl",
        weights=lambda wc: model_folder(CFG.heldout[wc.name].blame_model),
    output:
        f"{RUNS}/heldout/{{name}}/items.blamed.jsonl",
    log:
        f"{RUNS}/logs/blame_heldout/{{name}}.log",
    benchmark:
        f"{RUNS}/benchmarks/blame_heldout/{{name}}.tsv"
    params:
        model=lambda wc, input: model_path(CFG.heldout[wc.name].blame_model, input.weights),
        threshold=lambda wc: CFG.heldout[wc.name].threshold,
        cutoff=CFG.training.cutoff_len,
        device=DEVICE,
    resources:
        gpu=GPU,
    conda:
        ENV
    shell:
        "repro evaluate blame --model {params.model:q} --items {input.heldout:q} --threshold {params.threshold} "
        "--cutoff {params.cutoff} --device {params.device} --out {output:q} > {log:q} 2>&1"


rule score_heldout:
    input:
        unpack(lambda wc: {**generation_inputs(wc.run), "heldout": f"{RUNS}/heldout/{wc.name}/items.blamed.jsonl",
                           **({} if wc.run.startswith("base-") else
                              {"trained": f"{RUNS}/experiments/{wc.run}/instances.jsonl"})}),
    output:
        f"{RUNS}/heldout/{{name}}/scores/{{run}}.json",
    log:
        f"{RUNS}/logs/score_heldout/{{name}}/{{run}}.log",
    benchmark:
        f"{RUNS}/benchmarks/score_heldout/{{name}}/{{run}}.tsv"
    params:
        model=generation_model,
        adapter=adapter_option,
        trained=lambda wc, input: option("--trained-on", input.get("trained")),
        cutoff=CFG.training.cutoff_len,
        device=DEVICE,
    resources:
        gpu=GPU,
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
    conda:
        ENV
    shell:
        "repro report heldout --config {params.config:q} --runs {params.runs:q} --out {output.table:q} "
        "--figure {output.figure:q} > {log:q} 2>&1"
