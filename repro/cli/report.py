"""`repro report table|figure|heldout|curves`: the paper's tables and figures, the held-out test and the training
curves, from finished runs."""
from __future__ import annotations

from pathlib import Path

from repro.cli.common import add, store
from repro.report.figures import FIGURES
from repro.report.tables import TABLES


def register(commands) -> None:
    report = commands.add_parser("report", help="rebuild a table or figure of the paper from finished runs")
    sub = report.add_subparsers(dest="report_command", required=True)
    for kind, func, names, suffix in (("table", table, list(TABLES), "md"), ("figure", figure, list(FIGURES), "png")):
        p = add(sub, kind, f"write the {kind} (.md/.csv/.tex or .png/.pdf) beside the paper's values",
                f"repro report {kind} {names[-1]} --config config/smoke.yaml")
        p.add_argument("name", choices=names)
        p.add_argument("--config", required=True)
        p.add_argument("--runs", help="run folder of the profile (default runs/<profile>)")
        p.add_argument("--out", help=f"default {kind}s/<profile>/<name>.{suffix}")
        p.add_argument("--mirror", help="data mirror (stored AlpacaEval annotations)")
        if kind == "table":
            p.add_argument("--allow-missing", action="store_true",
                           help="show '-' for mapped runs not scored yet instead of stopping")
        p.set_defaults(func=func)

    p = add(sub, "heldout", "the held-out judgment test: each run's change from its base model, 95% paired-bootstrap "
            "intervals (table .md/.csv and figure .png)",
            "repro report heldout --config config/small.yaml")
    p.add_argument("--config", required=True)
    p.add_argument("--runs", help="run folder of the profile (default runs/<profile>)")
    p.add_argument("--out", help="table (default tables/<profile>/heldout.md; the .csv beside it)")
    p.add_argument("--figure", help="figure (default figures/<profile>/heldout.png)")
    p.add_argument("--bundle", help="also copy the per-item data the table is built from into this folder "
                                    "(gzipped), so a clone can rebuild the table")
    p.set_defaults(func=heldout)

    p = add(sub, "curves", "a training-curve figure per trained run, from the train_log.jsonl beside its adapter",
            "repro report curves --config config/smoke.yaml --out figures/smoke/curves")
    p.add_argument("--config", required=True)
    p.add_argument("--runs", help="run folder of the profile (default runs/<profile>)")
    p.add_argument("--out", help="folder of <experiment>.png (default figures/<profile>/curves)")
    p.add_argument("--experiments", nargs="+", help="default: every experiment of the config")
    p.set_defaults(func=curves)


def table(args) -> int:
    from repro.config import load_config
    from repro.report.tables import build_table, table_inputs, write_table

    config = load_config(args.config)
    runs = Path(args.runs or f"runs/{config.profile}")
    out = Path(args.out or f"tables/{config.profile}/{args.name}.md")
    missing = [f for f in table_inputs(args.name, config, runs) if not Path(f).is_file()]
    if missing and not args.allow_missing:  # a mistyped --runs would otherwise give a table of blanks
        raise ValueError(f"{args.name}: {len(missing)} score files of the runs it maps are missing (under {runs}), "
                         f"e.g. {', '.join(missing[:3])}; run them first, or pass --allow-missing")
    if runs.name != config.profile:  # the workflow's folder is runs/<profile>: another name is another profile's
        raise ValueError(f"--runs {runs}: the runs of profile '{runs.name}', not of '{config.profile}' (whose name the "
                         f"table would carry); use runs/{config.profile}")
    for path in write_table(build_table(args.name, config, runs, store(args)), out):
        print(path)
    return 0


def figure(args) -> int:
    from repro.config import load_config
    from repro.report.figures import build_figure

    config = load_config(args.config)
    runs = Path(args.runs or f"runs/{config.profile}")
    out = Path(args.out or f"figures/{config.profile}/{args.name}.png")
    for path in build_figure(args.name, config, runs, out, store(args)):
        print(path)
    return 0


def curves(args) -> int:
    from repro.config import load_config
    from repro.report.curves import write_curves

    config = load_config(args.config)
    runs = Path(args.runs or f"runs/{config.profile}")
    out = Path(args.out or f"figures/{config.profile}/curves")
    for path in write_curves(runs, args.experiments or list(config.experiments), out):
        print(path)
    return 0


def heldout(args) -> int:
    from repro.config import load_config
    from repro.report.heldout import build, write_bundle, write_figure, write_table

    config = load_config(args.config)
    if not config.heldout:
        raise ValueError(f"{args.config}: no `heldout` section, so no held-out test to report")
    runs = Path(args.runs or f"runs/{config.profile}")
    built = build(config, runs)
    table_out = Path(args.out or f"tables/{config.profile}/heldout.md")
    figure_out = Path(args.figure or f"figures/{config.profile}/heldout.png")
    write_table(built, table_out, config.profile)
    write_figure(built, figure_out)
    print(table_out, table_out.with_suffix(".csv"), figure_out, sep="\n")
    if args.bundle:
        written = write_bundle(config, runs, args.bundle, args.config)
        print(f"{len(written)} files gzipped into {args.bundle}; rebuild: repro report heldout --config "
              f"{Path(args.bundle) / 'config.yaml'} --runs {args.bundle} --out TABLE.md")
    return 0
