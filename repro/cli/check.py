"""`repro preflight`, `repro plan` and `repro config check`: what can be checked, and what the runs will cost, before
anything runs."""
from __future__ import annotations

import json

from repro.cli.common import add, store


def register(commands) -> None:
    p = add(commands, "preflight", "every check that needs no GPU and no API key: data, instances, tokens, "
            "templates, context windows, lm-eval tasks, the DAG, GPU memory, cost",
            "repro preflight --config config/paper.yaml --offline\n"
            "repro preflight --config config/paper.yaml --gpu H200 --out preflight.md")
    p.add_argument("--config", required=True)
    p.add_argument("--gpu", default="H100", help="H100 (80 GB, default), H200, A100 or L40S")
    p.add_argument("--offline", action="store_true", help="never download: data in neither the mirror nor the "
                   "cache is listed as not checked")
    p.add_argument("--mirror", help="data mirror (REPRO_DATA_MIRROR wins; default: the config's data.mirror)")
    p.add_argument("--out", help="also write the report to this file")
    p.add_argument("--no-dag", action="store_true", help="skip the snakemake dry run")
    p.set_defaults(func=preflight)

    p = add(commands, "plan", "GPU-hours and judge API cost of a config, per table and figure",
            "repro plan --config config/paper.yaml --gpu H100")
    p.add_argument("--config", required=True)
    p.add_argument("--gpu", default="H100", help="H100, H200, A100 or L40S")
    p.add_argument("--mirror", help="data mirror (token counts of the real data)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=plan)

    config = commands.add_parser("config", help="configuration files")
    sub = config.add_subparsers(dest="config_command", required=True)
    p = add(sub, "check", "validate a config file (unknown keys and wrong types name the file and the key)",
            "repro config check config/paper.yaml")
    p.add_argument("config")
    p.set_defaults(func=check)


def preflight(args) -> int:
    from repro.check.preflight import Preflight, format_report
    from repro.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except (ConfigError, OSError):
        config = None  # preflight reports it
    checks = Preflight(args.config, gpu=args.gpu, offline=args.offline, store=store(args, config),
                       dag=not args.no_dag).run()
    report = format_report(checks)
    print(report, end="")
    if args.out:
        from repro.io import write_text_atomic

        write_text_atomic(args.out, report)
    return 1 if any(c.problems for c in checks) else 0


def check(args) -> int:
    from repro.config import load_config

    config = load_config(args.config)
    print(f"{args.config}: profile '{config.profile}', {len(config.models)} models, "
          f"{len(config.experiments)} experiments: ok")
    return 0


def plan(args) -> int:
    from repro.check.plan import format_plan
    from repro.check.plan import plan as cost_plan
    from repro.config import load_config

    result = cost_plan(load_config(args.config), args.gpu, store(args))
    print(json.dumps(result, indent=2) if args.json else format_plan(result))
    return 0
