"""An experiment's training data as the workflow builds it (prepared records -> instances of its objective).

The workflow does the same in two steps (`repro data prepare`, `repro data instances`); this module lets
`repro data tokenize` and `repro preflight` build one experiment's instances in process, with the same options.
Records that only a run produces (a live loop's judged answers, ILF refinements written by a model) cannot be
built here: ask for them with `records_from_workflow`.
"""
from __future__ import annotations

from repro.data.converters import DATASETS, prepare
from repro.data.objectives import build_objective_instances
from repro.data.split import split_records
from repro.data.tokenizer import load_tokenizer


def records_from_workflow(config, name: str) -> str | None:
    """Why an experiment's records exist only once the workflow has run (None: they come from a data set)."""
    exp = config.experiments[name]
    if exp.loop:
        return f"the judged answers of online loop '{exp.loop}', iteration {exp.iteration}"
    if config.experiment_training(name).needs_model_refinements:
        return "refinements written by the starting model (`repro refine`)"
    return None


def limited(config, dataset: str, rows: list[dict]) -> list[dict]:
    """`data.limit` subsets training sets only (evaluation sets stay whole), as the workflow's prepare step."""
    if config.data.limit is not None and DATASETS.get(dataset, ("train",))[0] == "train":
        return rows[:config.data.limit]
    return rows


def experiment_instances(config, name: str, store) -> tuple[list[dict], dict]:
    """The instances the workflow trains experiment `name` on, built from its data set."""
    why = records_from_workflow(config, name)
    if why:
        raise ValueError(f"experiment '{name}' trains on {why}: pass that run's instances file (--instances)")
    exp = config.experiments[name]
    training = config.experiment_training(name)
    records, _ = prepare(exp.dataset, store)
    records = limited(config, exp.dataset, records)
    if exp.dataset in config.heldout:  # the training part of its held-out split, as the workflow trains on
        split = config.heldout[exp.dataset]
        records, _ = split_records(records, exp.dataset, split.items, split.train_records, split.seed)
    return build_objective_instances(records, training.objective,
                                     downsample=training.downsample, seed=training.seed, source=exp.dataset,
                                     instructions=exp.instructions,
                                     kto_refinements=training.kto.refinements_as_desirable)


def experiment_tokenizer(config, name: str, store, runs):
    """The tokenizer training uses for an experiment: its model's tokenizer source, else the starting weights'."""
    spec = config.models[config.experiments[name].base_model]
    if spec.tokenizer:
        return load_tokenizer(spec.tokenizer, store)
    return load_tokenizer(config.base_model_path(name, runs))
