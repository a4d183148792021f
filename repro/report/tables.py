"""Tables 2-6 rebuilt from finished runs, beside the published numbers, as Markdown, CSV and LaTeX.

Which run fills which row comes from the config's `report` section (each profile maps its own runs onto the
paper's rows; a row may take single columns from other sources, e.g. stored GPT-4 annotations; a list of runs gives
one table row each, all against the same published numbers). Every cell from a CUT run says the gamma (dynamic
weighting, Eq. 6) that run trained with: 0 is the released code, > 0 the paper's v4 loss. Building reads score
files only: it never trains, generates or evaluates, so it takes seconds.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from repro.data.samples import DATASET_SOURCE
from repro.io import atomic_path
from repro.report import paper
from repro.report.cells import RANKING, ROUGE_KEY, Value, read_value, score_file

TABLES = {
    "table2": (paper.TABLE2, paper.TABLE2_COLUMNS, "Offline alignment on Shepherd (1317 judgments)"),
    "table3": (paper.TABLE3, paper.TABLE3_COLUMNS, "Summarization (ROUGE)"),
    "table4": (paper.TABLE4, paper.TABLE4_COLUMNS, "Ablations (LLaMA2-chat-13b)"),
    "table5": (paper.TABLE5, paper.TABLE5_COLUMNS, "Model sizes and backbones (offline, Shepherd)"),
    "table6": (paper.TABLE6, paper.TABLE6_COLUMNS, "Online iterative alignment (LLaMA2-chat-13b)"),
}
AGREEMENT_FILE = "judge_agreement/alpaca_eval.json"  # under the runs folder (workflow rule judge_agreement)
LABELS = {"arc": "ARC", "hellaswag": "HellaSwag", "mmlu": "MMLU", "truthfulqa": "TruthfulQA", "avg": "Avg.",
          "alpaca_eval": "AlpacaEval", "judgments": "#J", "generalist_truthfulqa": "Generalist (TruthfulQA)",
          "specialist_rougelsum": "Specialist (rougeLsum)", "alpaca_eval_2_lc": "AlpacaEval 2.0 LC (not in the paper)"}


@dataclass
class Cell:
    column: str
    reproduced: float | None
    paper: float | None
    source: str | None  # run or stored:<model>; None: not mapped in this profile
    local_judge: bool = False
    generated_data: bool = False
    gamma: float | None = None  # the CUT run's dynamic-weighting exponent (None: not a CUT run)
    stderr: float | None = None  # lm-eval's standard error of the reproduced score

    @property
    def diff(self) -> float | None:
        return None if self.reproduced is None or self.paper is None else self.reproduced - self.paper


@dataclass
class Table:
    name: str
    title: str
    profile: str
    columns: tuple
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)
    judge_agreement: dict | None = None  # the local AlpacaEval judge measured against GPT-4 (repro judge agreement)


def row_key(key) -> str:
    return "/".join(key) if isinstance(key, tuple) else key


def row_variants(spec) -> list:
    """The runs mapped onto one of the paper's rows: a list gives one table row each."""
    return list(spec) if isinstance(spec, list) else [spec]


def run_gamma(config, source: str | None) -> float | None:
    if source in config.experiments:
        training = config.experiment_training(source)
        if training.objective == "cut":
            return training.cut.gamma
    return None


def row_sources(spec, columns) -> dict[str, str | None]:
    """A row of `report`: a run name for every column, or {column: source, '*': default}."""
    if spec is None:
        return dict.fromkeys(columns)
    if isinstance(spec, str):
        return dict.fromkeys(columns, spec)
    unknown = set(spec) - set(columns) - {"*"}
    if unknown:
        raise ValueError(f"report: unknown columns {sorted(unknown)}; this table has {list(columns)}")
    return {c: spec[c] if c in spec else spec.get("*") for c in columns}  # an explicit null leaves a cell out


def table_columns(name: str, config) -> tuple:
    """The paper's columns, then AlpacaEval 2.0 LC where the profile scores it."""
    _, columns, _ = TABLES[name]
    return columns + (paper.NOT_IN_PAPER_COLUMNS.get(name, ()) if config.evaluation.alpaca_eval_2.enabled else ())


def build_table(name: str, config, runs: str | Path, store=None) -> Table:
    published, _, title = TABLES[name]
    columns = table_columns(name, config)
    runs = Path(runs)
    mapping = config.report.get(name, {})
    added = [row_key(k) for k in paper.NOT_IN_PAPER.get(name, [])]
    if set(mapping) - {row_key(k) for k in published} - set(added):
        raise ValueError(f"report.{name}: unknown rows {sorted(set(mapping) - {row_key(k) for k in published})}; "
                         f"the paper's rows: {sorted(row_key(k) for k in published)}, rows not in the paper: {added}")
    generated = generated_runs(config)
    table = Table(name, title, config.profile, columns)
    padding = (None,) * (len(columns) - len(next(iter(published.values()))))
    rows = [(row_key(k), row_key(k), tuple(v) + padding) for k, v in published.items()]
    rows += [(k, f"{k} ({paper.NOT_IN_PAPER_LABEL})", (None,) * len(columns)) for k in added if k in mapping]
    for key, label, values in rows:
        variants = row_variants(mapping.get(key))
        for spec in variants:
            sources = row_sources(spec, columns)
            cells = []
            for column, paper_value in zip(columns, values):
                source = sources[column]
                gamma = run_gamma(config, source)
                if column == "avg":
                    cells.append(Cell(column, None, paper_value, source, gamma=gamma))
                    continue
                from_samples = source in generated and (not source.startswith("base-") or column in ROUGE_KEY)
                got = read_value(runs, source, column, store, from_samples) if source else Value(None, None)
                cells.append(Cell(column, got.value, paper_value, source, got.local_judge, got.generated_data,
                                  gamma, got.stderr))
            _fill_average(cells)
            table.rows.append((_label(label, cells, len(variants) > 1), cells))
    measured = runs / AGREEMENT_FILE
    if measured.is_file() and any(c.local_judge for _, cells in table.rows for c in cells):
        table.judge_agreement = json.loads(measured.read_text())
    return table


def local_judge_note(table: Table) -> str:
    note = "AlpacaEval judged by a local model, not GPT-4: not comparable with the paper."
    a = table.judge_agreement
    if a:
        kappa = "undefined" if a["kappa"] is None else f"{a['kappa']:.2f}"
        interval = f" (95% CI {a['agreement_ci95'][0]:.2f}-{a['agreement_ci95'][1]:.2f})" if a["agreement_ci95"] else ""
        note += (f" Its agreement with GPT-4's stored annotations on {a['n']} pairs: {a['agreement']:.2f}{interval}, "
                 f"Cohen's kappa {kappa}.")
    return note


def _label(key: str, cells: list[Cell], several: bool) -> str:
    """A row's name; when several runs fill one paper row, each says its gamma."""
    gammas = sorted({c.gamma for c in cells if c.gamma is not None})
    return f"{key} (γ={', '.join(_gamma_text(g) for g in gammas)})" if several and gammas else key


def _gamma_text(gamma: float) -> str:
    return f"{gamma:g}" + (", released" if gamma == 0 else "")


def _fill_average(cells: list[Cell]) -> None:
    """Avg. = the mean of the four ranking tasks (Table 2), reproduced only when all four are."""
    by_column = {c.column: c for c in cells}
    if "avg" in by_column:
        parts = [by_column[c].reproduced for c in RANKING]
        if all(p is not None for p in parts):
            by_column["avg"].reproduced = sum(parts) / len(parts)
            errors = [by_column[c].stderr for c in RANKING]
            if all(e is not None for e in errors):  # the four benchmarks' samples are independent
                by_column["avg"].stderr = math.sqrt(sum(e * e for e in errors)) / len(errors)


def generated_runs(config) -> set[str]:
    """Runs trained or scored on project-generated schema samples."""
    generated = set()
    for name, exp in config.experiments.items():
        if DATASET_SOURCE.get(exp.dataset) in config.data.generated:
            generated.add(name)
    if "summarization" in config.data.generated:  # base models' ROUGE comes from generated summarization prompts
        generated |= {f"base-{m}" for m in config.models}
    return generated


def table_inputs(name: str, config, runs: str | Path) -> list[str]:
    """Every score file a table reads (for the workflow's dependencies)."""
    columns = table_columns(name, config)
    files = set()
    for spec in (v for value in config.report.get(name, {}).values() for v in row_variants(value)):
        for column, source in row_sources(spec, columns).items():
            path = score_file(Path(runs), source, column) if source else None
            if path is not None:
                files.add(str(path))
    return sorted(files)


# ------------------------------------------------------------------ writers

def _fmt(value: float | None, signed: bool = False, whole: bool = False) -> str:
    if value is None:
        return "-"
    if whole:  # counts (#J)
        return f"{value:+.0f}" if signed else f"{value:.0f}"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _reproduced(c: Cell, plus_minus: str = " ± ") -> str:
    """The reproduced value, with lm-eval's standard error where there is one (benchmark cells)."""
    text = _fmt(c.reproduced, whole=c.column == "judgments")
    return text + (f"{plus_minus}{c.stderr:.2f}" if c.stderr is not None and c.reproduced is not None else "")


def _cell_text(c: Cell) -> str:
    whole = c.column == "judgments"
    gamma = "" if c.gamma is None else f" (γ {c.gamma:g})"
    return (f"{_reproduced(c)}{_marks(c)} / {_fmt(c.paper, whole=whole)} / "
            f"{_fmt(c.diff, True, whole)}{gamma}")


def _marks(cell: Cell) -> str:
    return ("†" if cell.local_judge else "") + ("‡" if cell.generated_data else "")


def to_markdown(table: Table) -> str:
    head = ["row"] + [f"{LABELS.get(c, c)} (repro / paper / Δ)" for c in table.columns] + ["run"]
    lines = [f"# Table {table.name.removeprefix('table')}: {table.title}", "",
             f"Profile **{table.profile}**; paper values from {paper.VERSION}. Each cell: reproduced / paper / "
             "difference, and for a CUT run the γ it trained with (0 = the released code, no dynamic weighting; "
             "> 0 = the paper's Eq. 6); ± is lm-eval's standard error of a benchmark score (Avg.: the four "
             "combined as independent). '-': not run in this profile (or not in the paper).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, cells in table.rows:
        runs = sorted({c.source for c in cells if c.source})
        parts = [_cell_text(c) for c in cells]
        lines.append("| " + " | ".join([key] + parts + [", ".join(runs) or "-"]) + " |")
    cells = [c for _, row in table.rows for c in row]
    notes = ([f"† {local_judge_note(table)}"] if any(c.local_judge for c in cells) else []) + (
        ["‡ trained or scored on project-generated schema samples (data/samples.py): meaningless numbers."]
        if any(c.generated_data for c in cells) else [])
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["table", "profile", "row", "column", "reproduced", "paper", "diff", "run", "gamma",
                     "local_judge", "generated_data", "paper_version", "stderr"])
    for key, cells in table.rows:
        for c in cells:
            writer.writerow([table.name, table.profile, key, c.column, "" if c.reproduced is None else c.reproduced,
                             "" if c.paper is None else c.paper, "" if c.diff is None else c.diff, c.source or "",
                             "" if c.gamma is None else c.gamma, c.local_judge, c.generated_data, paper.VERSION,
                             "" if c.stderr is None else c.stderr])
    return out.getvalue()


DAGGER, DDAGGER = r"$^\dagger$", r"$^\ddagger$"


def to_latex(table: Table) -> str:
    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("%", r"\%")

    lines = [r"\begin{tabular}{l" + "c" * len(table.columns) + "}", r"\toprule",
             " & ".join(["Row"] + [esc(LABELS.get(c, c)) for c in table.columns]) + r" \\", r"\midrule"]
    for key, cells in table.rows:
        parts = [_reproduced(c, r"$\pm$") + (DAGGER if c.local_judge else "") + (DDAGGER if c.generated_data else "")
                 + f" ({_fmt(c.paper)})" for c in cells]
        lines.append(" & ".join([esc(key)] + parts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              f"% {esc(table.name)}, profile {esc(table.profile)}: reproduced (paper, {paper.VERSION})."]
    return "\n".join(lines) + "\n"


def write_table(table: Table, out_md: str | Path) -> list[Path]:

    out_md = Path(out_md)
    written = []
    for suffix, text in ((".md", to_markdown(table)), (".csv", to_csv(table)), (".tex", to_latex(table))):
        path = out_md.with_suffix(suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
        written.append(path)
    return written
