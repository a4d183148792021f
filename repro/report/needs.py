"""What each run must be scored on: the union of what its cells show in the profile's tables and figures.

Metrics are `alpaca_eval` (1.0), `alpaca_eval_2` (2.0 LC), `rouge`, and lm-eval tasks by their config key
(`arc_challenge`, `hellaswag`, `mmlu`, `truthfulqa_mc2`). The workflow schedules, and `repro plan` charges, only
these; a run that no cell shows is trained and not scored. `evaluation.score: all` scores every generating run on
everything instead, and `evaluation.also_score` adds AlpacaEval and every lm-eval task for the runs it names.
"""
from __future__ import annotations

from repro.report.cells import ALPACA_EVAL_2_LC, LM_EVAL_KEY, RANKING, ROUGE_KEY
from repro.report.figures import FIGURE_METRICS
from repro.report.tables import TABLES, row_sources, row_variants, table_columns

SUMMARIZATION = "summarization"


def column_metrics(column: str) -> set[str]:
    """The scores one cell reads (Avg. is computed from the four ranking tasks; #J comes from training)."""
    if column == "avg":
        return {LM_EVAL_KEY[c] for c in RANKING}
    if column in LM_EVAL_KEY:
        return {LM_EVAL_KEY[column]}
    if column in ROUGE_KEY:
        return {"rouge"}
    if column in ("alpaca_eval", "alpaca_eval_2"):
        return {column}
    if column == ALPACA_EVAL_2_LC:
        return {"alpaca_eval_2"}
    return set()


def run_needs(config) -> dict[str, set[str]]:
    """{run: the metrics its cells show}, over every table and figure the profile maps runs onto."""
    needs: dict[str, set[str]] = {}

    def add(source: str | None, metrics: set[str]) -> None:
        if source and not source.startswith("stored:") and metrics:
            needs.setdefault(source, set()).update(metrics)

    for name in TABLES:
        columns = table_columns(name, config)
        for spec in (v for value in config.report.get(name, {}).values() for v in row_variants(value)):
            for column, source in row_sources(spec, columns).items():
                add(source, column_metrics(column))
    for name, metrics in FIGURE_METRICS.items():
        for source in config.report.get(name, {}).values():
            if isinstance(source, str):
                add(source, set().union(*(column_metrics(m) for m in metrics)))
    everything = _all_metrics(config)
    if config.evaluation.score == "all":
        for run in generation_runs(config):
            add(run, everything - ({"rouge"} if run not in summarization_runs(config) else set()))
    for run in config.evaluation.also_score:
        add(run, everything - {"rouge"})
    return needs


def lm_eval_tasks(config, run: str) -> list[str]:
    """The configured lm-eval tasks a run's cells show (all of them when none is named: a run scored by hand)."""
    wanted = run_needs(config).get(run, set()) & set(config.evaluation.lm_eval.tasks)
    return [t for t in config.evaluation.lm_eval.tasks if t in wanted] or list(config.evaluation.lm_eval.tasks)


def _all_metrics(config) -> set[str]:
    metrics = {"alpaca_eval", "rouge", *config.evaluation.lm_eval.tasks}
    return metrics | ({"alpaca_eval_2"} if config.evaluation.alpaca_eval_2.enabled else set())


def generation_runs(config) -> list[str]:
    """What gets generated from and scored: every base model ("base-<model>") and every trained model except AI
    judges (they write judgments, not answers)."""
    trained = [n for n in config.experiments if config.experiment_training(n).objective != "ai_judge"]
    return [f"base-{m}" for m in config.models] + trained


def summarization_runs(config) -> list[str]:
    """Table 3 / Table 4 (Specialist): the summarization experiments and the base models they start from."""
    experiments = [n for n, e in config.experiments.items() if e.dataset.startswith(SUMMARIZATION)]
    return sorted({f"base-{config.experiments[n].base_model}" for n in experiments}) + experiments


def score_files(config, runs: str) -> list[str]:
    """Every score file the profile's cells (and `score: all` / `also_score`) ask for."""
    files = []
    for run, metrics in sorted(run_needs(config).items()):
        if metrics & set(config.evaluation.lm_eval.tasks):
            files.append(f"{runs}/scores/{run}/lm_eval.json")
        files += [f"{runs}/scores/{run}/{m}.json" for m in ("alpaca_eval", "alpaca_eval_2", "rouge") if m in metrics]
    return files
