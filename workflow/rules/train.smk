# Training: every experiment's adapter (or full model), and the merged models the online chains start from.


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
    threads: TORCH_THREADS
    resources:
        **needs(gpu=GPU, mem_gb=128, hours=24),
    conda:
        ENV
    shell:
        "repro train --config {params.config:q} --experiment {wildcards.experiment} --base-model {params.base:q} "
        "--instances {input.instances:q} --out {output:q} --resume --no-progress {params.mirror} > {log:q} 2>&1"


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
    threads: TORCH_THREADS
    resources:
        **needs(mem_gb=160, hours=2),
    conda:
        ENV
    shell:
        "repro merge --base-model {params.base:q} --adapter {input.adapter:q} --out {output:q} --dtype {params.dtype} "
        "> {log:q} 2>&1"
