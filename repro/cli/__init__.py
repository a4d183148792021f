"""`repro <stage> ...`: the only entry point the workflow uses; every step also runs by hand.

One module per stage (data, model, train, judge, online, generate, evaluate, report, check, stop), each with its
subcommands, their arguments, runnable examples and handlers; this file only registers them and turns the
errors a user can cause into one line on stderr (REPRO_DEBUG=1 shows the traceback).
"""
from __future__ import annotations

import argparse
import errno
import os
import sys

from repro.cli import check, data, evaluate, generate, judge, model, online, report, stop, train
from repro.cli.common import OneLineParser

STAGES = (data, model, train, judge, online, generate, evaluate, report, check, stop)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("repro")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="repro", description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"repro {_version()}")
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
    except (DataError, ConfigError, ValueError, OSError, FloatingPointError, RuntimeError) as err:
        if os.environ.get("REPRO_DEBUG"):
            raise
        message = os_error_text(err) if isinstance(err, OSError) else str(err)
        print(f"error: {' '.join(message.split())}  (REPRO_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    except Exception as err:  # a failure no check foresaw: still one line, and the way to see more
        if os.environ.get("REPRO_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {' '.join(str(err).split())[:500]}  (REPRO_DEBUG=1 shows "
              "the traceback; please report it)", file=sys.stderr)
        return 1


OS_ERRORS = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
             errno.EACCES: "permission denied", errno.ENOENT: "no such file or directory",
             errno.EFBIG: "file too large (a file size limit)", errno.EDQUOT: "disk quota exceeded"}


def os_error_text(err: OSError) -> str:
    """One line naming the file: disk full, read-only and the like said as such."""
    what = OS_ERRORS.get(err.errno, err.strerror or str(err))
    files = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    return f"{files}: {what}" if files else what
