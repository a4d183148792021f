# Checks and data: preflight, prepared data sets, training instances, locally built models, ILF refinements.


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
    resources:
        **needs(mem_gb=8, hours=1),
    conda:
        ENV
    shell:
        "repro preflight --config {params.config:q} --out {output:q} {params.mirror} > {log:q} 2>&1"


rule schema_samples:
    output:
        f"{GENERATED}/GENERATED.json",
    log:
        f"{RUNS}/logs/schema_samples.log",
    benchmark:
        f"{RUNS}/benchmarks/schema_samples.tsv"
    params:
        folder=lambda wc, output: os.path.dirname(output[0]),
    resources:
        **needs(mem_gb=4, hours=1),
    conda:
        ENV
    shell:
        "repro data samples --out {params.folder:q} > {log:q} 2>&1"


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
    resources:
        **needs(mem_gb=8, hours=1),
    conda:
        ENV
    shell:
        "repro data prepare {wildcards.name} --out {output.rows:q} {params.options} > {log:q} 2>&1"


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
        options=lambda wc: instance_options(wc.experiment),
    resources:
        **needs(mem_gb=8, hours=1),
    conda:
        ENV
    shell:
        "repro data instances {params.dataset:q} --records {input:q} --out {output.rows:q} {params.options} > {log:q} 2>&1"


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
    threads: TORCH_THREADS
    resources:
        **needs(mem_gb=32, hours=1),
    conda:
        ENV
    shell:
        "repro model build {params.source} {output:q} {params.mirror} > {log:q} 2>&1"
