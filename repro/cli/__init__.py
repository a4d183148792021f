"""`repro <stage> ...`: the only entry point the workflow uses; every step also runs by hand.

One module per stage (data, model, train, online, generate, evaluate, report, check), each with its
subcommands, their arguments, runnable examples and handlers; this file only registers them and turns the
errors a user can cause into one line on stderr (REPRO_DEBUG=1 shows the traceback).
"""
from __future__ import annotations

import argparse
import os
import sys

from repro.cli import check, data, evaluate, generate, model, online, report, train

STAGES = (data, model, train, online, generate, evaluate, report, check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        stage.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from repro.config import ConfigError
    from repro.data import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, ConfigError, ValueError, FileNotFoundError, FloatingPointError, RuntimeError) as err:
        if os.environ.get("REPRO_DEBUG"):
            raise
        print(f"error: {err}  (REPRO_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
