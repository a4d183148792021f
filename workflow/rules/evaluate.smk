# Scoring: AlpacaEval (alpaca_eval), ARC / HellaSwag / MMLU / TruthfulQA (lm-eval), ROUGE.


rule alpaca_eval:
    input:
        outputs=f"{RUNS}/generations/{{run}}/alpaca_eval.json",
        judge=annotator_model(),
    output:
        f"{RUNS}/scores/{{run}}/alpaca_eval.json",
    log:
        f"{RUNS}/logs/alpaca_eval/{{run}}.log",
    benchmark:
        f"{RUNS}/benchmarks/alpaca_eval/{{run}}.tsv"
    params:
        cache=lambda wc: f"{RUNS}/scores/{wc.run}/alpaca_eval_cache",
        annotator=CFG.evaluation.alpaca_eval.annotator,
        version=CFG.evaluation.alpaca_eval.version,
        judge=annotator_option,
        lc=option("--length-controlled", CFG.evaluation.alpaca_eval.length_controlled),
        mirror=MIRROR,
    conda:
        ENV
    shell:
        "repro evaluate alpaca-eval --model-outputs {input.outputs:q} --out {output:q} --cache {params.cache:q} "
        "--annotator {params.annotator:q} --version {params.version:q} {params.judge} {params.lc} {params.mirror} "
        "> {log:q} 2>&1"


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
    resources:
        gpu=lambda wc: gpus(wc.run),
    conda:
        ENV
    shell:
        "repro evaluate lm-eval --config {params.config:q} --model {params.model:q} {params.adapter} "
        "--data {params.data:q} --device {params.device} --tensor-parallel {params.tp} --out {output:q} > {log:q} 2>&1"


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
    conda:
        ENV
    shell:
        "repro evaluate rouge --predictions {input.predictions:q} --references {input.references:q} "
        "--reference-field {params.field} {params.stemmer} --out {output:q} > {log:q} 2>&1"
