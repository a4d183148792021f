# Generation: AlpacaEval answers and Table 3's summaries of every scored run (one rule, the prompt set a
# wildcard), and ILF's refinements.


rule generate:
    input:
        unpack(lambda wc: generation_inputs(wc.run)),
        prompts=prompt_file,
    output:
        outputs=f"{RUNS}/generations/{{run}}/{{prompts}}",
        manifest=f"{RUNS}/generations/{{run}}/{{prompts}}.manifest.json",
    wildcard_constraints:
        prompts="|".join(name.replace(".", r"\.") for name in PROMPT_SETS),
    log:
        f"{RUNS}/logs/generate/{{run}}/{{prompts}}.log",
    benchmark:
        f"{RUNS}/benchmarks/generate/{{run}}/{{prompts}}.tsv"
    params:
        config=CONFIG_FILE,
        model=generation_model,
        adapter=adapter_option,
        prompts=prompts_option,
        limit=limit_option,
        mirror=MIRROR,
        tp=tensor_parallel,
    threads: TORCH_THREADS
    resources:
        **needs(gpu=lambda wc: gpus(wc.run), mem_gb=64, hours=6),
    conda:
        ENV
    shell:
        "repro generate --config {params.config:q} --model {params.model:q} {params.adapter} "
        "--prompts {params.prompts:q} --generator {wildcards.run} --out {output.outputs:q} {params.limit} "
        "{params.mirror} --tensor-parallel {params.tp} --no-progress > {log:q} 2>&1"


rule refine:
    """ILF's first step: the starting model rewrites each negative response using its judgment."""
    input:
        records=lambda wc: dataset_records(CFG.experiments[wc.experiment].dataset),
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
    threads: TORCH_THREADS
    resources:
        **needs(gpu=GPU, mem_gb=64, hours=6),
    conda:
        ENV
    shell:
        "repro refine --config {params.config:q} --model {params.model:q} --records {input.records:q} "
        "--out {output:q} > {log:q} 2>&1"
