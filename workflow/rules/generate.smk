# Generation: AlpacaEval answers of every scored run, and summaries for Table 3.


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
        model=generation_model,
        adapter=adapter_option,
        limit=option("--limit", CFG.evaluation.alpaca_eval.limit),
        mirror=MIRROR,
        tp=tensor_parallel,
    threads: TORCH_THREADS
    resources:
        **needs(gpu=lambda wc: gpus(wc.run), mem_gb=64, hours=6),
    conda:
        ENV
    shell:
        "repro generate --config {params.config:q} --model {params.model:q} {params.adapter} --prompts alpaca_eval "
        "--generator {wildcards.run} --out {output.outputs:q} {params.limit} {params.mirror} --tensor-parallel {params.tp} "
        "--no-progress > {log:q} 2>&1"


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
        model=generation_model,
        adapter=adapter_option,
        tp=tensor_parallel,
    threads: TORCH_THREADS
    resources:
        **needs(gpu=lambda wc: gpus(wc.run), mem_gb=64, hours=6),
    conda:
        ENV
    shell:
        "repro generate --config {params.config:q} --model {params.model:q} {params.adapter} --prompts {input.prompts:q} "
        "--generator {wildcards.run} --out {output.outputs:q} --tensor-parallel {params.tp} --no-progress > {log:q} 2>&1"
