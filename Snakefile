# The CUT reproduction workflow. Every rule calls the `repro` command line, so each step also runs by hand.
#   snakemake --cores all                                   # the full paper (config/paper.yaml)
#   snakemake --cores 2 --configfile config/smoke.yaml      # the same DAG on a tiny model, CPU, minutes
#   snakemake --cores all tables/paper/table6.md            # one table, and only the runs it needs
# A --configfile replaces config/paper.yaml as a whole (it is not merged over it), so a profile's experiments
# never pick up the paper's. The rules live in workflow/rules/, one file per stage; helpers in common.smk.
import os

from snakemake.utils import min_version
from repro.config import ConfigError, exit_with_error, workflow_config
from repro.report.needs import score_files
min_version("9.0")  # executor plugins (profiles/slurm), `workflow.overwrite_configfiles`

PAPER_CONFIG = os.path.join(workflow.basedir, "config", "paper.yaml")
if len(workflow.overwrite_configfiles) > 1:
    exit_with_error("give one --configfile (a profile); put variations in a copy of it")
try:  # `snakemake --config key=value` overrides reach every job, through runs/<profile>/config.resolved.yaml
    CFG, CONFIG_FILE = workflow_config(config, workflow.overwrite_configfiles[0] if workflow.overwrite_configfiles
                                       else PAPER_CONFIG, overridden=bool(workflow.config_settings.config))
except ConfigError as err:
    exit_with_error(err)
RUNS = f"runs/{CFG.profile}"


include: "workflow/rules/common.smk"


rule all:
    input:
        f"{RUNS}/preflight.md",
        report_targets(),
        expand(f"{RUNS}/data/{{name}}.jsonl", name=CFG.data.prepare),
        expand(f"{RUNS}/experiments/{{experiment}}/instances.jsonl", experiment=CFG.experiments),
        experiment_outputs(),
        built_models(),
        score_files(CFG, RUNS),  # what the cells show (evaluation.score: all -> everything)


wildcard_constraints:
    run="[A-Za-z0-9_.-]+",
    experiment="[A-Za-z0-9_.-]+",
    loop="[A-Za-z0-9_.-]+",
    model="[A-Za-z0-9_.-]+",
    name="[A-Za-z0-9_.-]+",
    k="[0-9]+",


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/online.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/heldout.smk"
