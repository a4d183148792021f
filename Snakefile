# The CUT reproduction workflow. Every rule calls the `repro` command line, so each step also runs by hand.
#   snakemake --cores all                                   # the full paper (config/paper.yaml)
#   snakemake --cores 2 --configfile config/smoke.yaml      # the same DAG on a tiny model, CPU, minutes
#   snakemake --cores all tables/paper/table6.md            # one table, and only the runs it needs
# A --configfile replaces config/paper.yaml as a whole (it is not merged over it), so a profile's experiments
# never pick up the paper's. The rules live in workflow/rules/, one file per stage; helpers in common.smk.
import os

import yaml
from snakemake.utils import min_version
from repro.config import ConfigError, config_from_dict, exit_with_error as refuse, read_config_file
from repro.report.needs import score_files
min_version("9.0")  # executor plugins (profiles/slurm), `workflow.overwrite_configfiles`

PAPER_CONFIG = os.path.join(workflow.basedir, "config", "paper.yaml")
if len(workflow.overwrite_configfiles) > 1:
    refuse("give one --configfile (a profile); put variations in a copy of it")
CONFIG_FILE = workflow.overwrite_configfiles[0] if workflow.overwrite_configfiles else PAPER_CONFIG
try:  # keys given twice, alias bombs, YTE templating, non-UTF-8: refused before anything expands the config
    from_file = read_config_file(CONFIG_FILE)
except ConfigError as err:
    refuse(err)
if "profile" not in config:
    config.update({**from_file, **config})
# `snakemake --config key=value` overrides reach every job: "__" in a key sets a nested value
# (heldout__shepherd__items=20 training__max_steps=2; Snakemake allows no dots there), and the merged config is
# written to runs/<profile>/config.resolved.yaml, which the jobs then read instead of the profile's file.
for key in [k for k in config if "__" in k]:
    *path, last = key.split("__")
    node = config
    for part in path:
        node = node.setdefault(part, {})
    node[last] = config.pop(key)
try:
    CFG = config_from_dict(config, origin=f"{CONFIG_FILE} (with --config overrides)" if workflow.config_settings.config
                           else CONFIG_FILE)
except ConfigError as err:
    refuse(err)
RUNS = f"runs/{CFG.profile}"
if workflow.config_settings.config:
    CONFIG_FILE = f"{RUNS}/config.resolved.yaml"
    resolved = yaml.safe_dump(dict(config), sort_keys=False)
    if not os.path.exists(CONFIG_FILE) or open(CONFIG_FILE).read() != resolved:
        os.makedirs(RUNS, exist_ok=True)
        with open(CONFIG_FILE, "w") as handle:
            handle.write(resolved)


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
