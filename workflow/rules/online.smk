# Live online loops: iteration k draws new instructions, generates with model k-1, judges; training and merging
# are the train stage's (the iteration is the experiment `<loop>-iter<k>`).


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
    resources:
        **needs(mem_gb=4, hours=1),
    conda:
        ENV
    shell:
        "repro online draw --pool {input.pool:q} --exclude {input.exclude:q} --n {params.n} --seed {params.seed} "
        "--label {wildcards.loop}-iter{wildcards.k} --out {output:q} > {log:q} 2>&1"


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
    threads: TORCH_THREADS
    resources:
        **needs(gpu=lambda wc: gpus(loop_iteration(wc)), mem_gb=64, hours=6),
    conda:
        ENV
    shell:
        "repro generate --config {params.config:q} --model {params.model:q} --prompts {input.prompts:q} "
        "--generator model-k-minus-1 --out {output:q} --no-progress > {log:q} 2>&1"


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
    threads: lambda wc: 1 if loop_judge(wc).kind == "openai" else TORCH_THREADS
    resources:
        **needs(gpu=online_judge_gpus, mem_gb=64, hours=12),
    conda:
        ENV
    shell:
        "repro judge --config {params.config:q} --judge {params.judge:q} --inputs {input.responses:q} --out {output:q} "
        "--cache {params.cache:q} {params.options} > {log:q} 2>&1"
