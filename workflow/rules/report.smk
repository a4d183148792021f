# Tables and figures: they read score files (and, for Figure 2, one model) only, so rebuilding one takes seconds.


rule table:
    input:
        scores=lambda wc: table_inputs(wc.table, CFG, RUNS),
        agreement=agreement_file(),
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
    resources:
        **needs(mem_gb=4, hours=1),
    conda:
        ENV
    shell:
        "repro report table {wildcards.table} --config {params.config:q} --runs {params.runs:q} --out {output.md:q} "
        "{params.mirror} > {log:q} 2>&1"


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
    threads: lambda wc: TORCH_THREADS if wc.figure == "figure2" else 1  # Figure 2 runs its model
    resources:
        **needs(gpu=lambda wc: GPU if wc.figure == "figure2" else 0, mem_gb=32, hours=1),
    conda:
        ENV
    shell:
        "repro report figure {wildcards.figure} --config {params.config:q} --runs {params.runs:q} --out {output.png:q} "
        "{params.mirror} > {log:q} 2>&1"


rule training_curves:
    """A training-curve figure per trained run, from the train_log.jsonl each training job writes."""
    input:
        expand(f"{RUNS}/experiments/{{experiment}}/adapter", experiment=CFG.experiments),
    output:
        directory(f"figures/{CFG.profile}/curves"),
    log:
        f"{RUNS}/logs/training_curves.log",
    params:
        config=CONFIG_FILE,
        runs=lambda wc, input: os.path.dirname(os.path.dirname(os.path.dirname(input[0]))),  # runs/<profile>
    resources:
        **needs(mem_gb=4, hours=1),
    conda:
        ENV
    shell:
        "repro report curves --config {params.config:q} --runs {params.runs:q} --out {output:q} > {log:q} 2>&1"
