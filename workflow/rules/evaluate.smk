# Scoring: AlpacaEval (alpaca_eval), ARC / HellaSwag / MMLU / TruthfulQA (lm-eval), ROUGE.


rule alpaca_eval:
    input:
        outputs=f"{RUNS}/generations/{{run}}/alpaca_eval.json",
        judge=lambda wc: annotator_model() if wc.benchmark == "alpaca_eval" else [],
    output:
        f"{RUNS}/scores/{{run}}/{{benchmark}}.json",
    log:
        f"{RUNS}/logs/{{benchmark}}/{{run}}.log",
    benchmark:
        f"{RUNS}/benchmarks/{{benchmark}}/{{run}}.tsv"
    wildcard_constraints:
        benchmark="alpaca_eval|alpaca_eval_2",  # AlpacaEval 1.0 (the paper's), 2.0 length-controlled (not)
    params:
        cache=lambda wc: f"{RUNS}/scores/{wc.run}/{wc.benchmark}_cache",
        settings=alpaca_eval_options,
        judge=lambda wc, input: annotator_option(wc, input) if wc.benchmark == "alpaca_eval" else "",
        mirror=MIRROR,
    threads: lambda wc: TORCH_THREADS if local_alpaca_judge(wc) else 1
    resources:
        **needs(gpu=alpaca_judge_gpus, mem_gb=32, hours=6),
    conda:
        ENV
    shell:
        "repro evaluate alpaca-eval --model-outputs {input.outputs:q} --out {output:q} --cache {params.cache:q} "
        "{params.settings} {params.judge} {params.mirror} > {log:q} 2>&1"


rule judge_agreement:
    input:
        judge=annotator_model(),
    output:
        f"{RUNS}/judge_agreement/alpaca_eval.json",
    log:
        f"{RUNS}/logs/judge_agreement/alpaca_eval.log",
    benchmark:
        f"{RUNS}/benchmarks/judge_agreement/alpaca_eval.tsv"
    params:
        config=CONFIG_FILE,
        model=lambda wc, input: option("--model", model_path(CFG.evaluation.alpaca_eval.judge_model, input.judge)),
        reference=" ".join(shlex.quote(m) for m in CFG.evaluation.alpaca_eval.agreement_reference),
        limit=option("--limit", CFG.evaluation.alpaca_eval.agreement_limit),
        mirror=MIRROR,
    threads: TORCH_THREADS
    resources:
        **needs(gpu=lambda wc: model_gpus(CFG.evaluation.alpaca_eval.judge_model), mem_gb=32, hours=6),
    conda:
        ENV
    shell:
        "repro judge agreement --judge alpaca_eval --config {params.config:q} {params.model} "
        "--reference-stored {params.reference} {params.limit} --out {output:q} {params.mirror} > {log:q} 2>&1"


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
        model=generation_model,
        adapter=adapter_option,
        data=lambda wc, input: os.path.dirname(input.data[0]),
        device="cpu" if CFG.device == "cpu" else "cuda",
        tp=tensor_parallel,
        tasks=lm_eval_task_option,
    threads: TORCH_THREADS
    resources:
        **needs(gpu=lambda wc: gpus(wc.run), mem_gb=64, hours=12),
    conda:
        ENV
    shell:
        "repro evaluate lm-eval --config {params.config:q} --model {params.model:q} {params.adapter} "
        "--data {params.data:q} --device {params.device} --tensor-parallel {params.tp} {params.tasks} "
        "--out {output:q} > {log:q} 2>&1"


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
        stemmer=option("--no-stemmer", not CFG.evaluation.rouge.use_stemmer),
    resources:
        **needs(mem_gb=4, hours=1),
    conda:
        ENV
    shell:
        "repro evaluate rouge --predictions {input.predictions:q} --references {input.references:q} "
        "--reference-field {params.field} {params.stemmer} --out {output:q} > {log:q} 2>&1"
