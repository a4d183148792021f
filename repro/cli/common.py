"""What several stages' commands share: the data store, sidecar paths, provenance, parser helpers."""
from __future__ import annotations

import argparse
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    """A bad argument is one line on stderr (what and why), exit status 2; `-h` still shows the usage."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}  (-h shows the usage)\n")


def _number(kind, text: str, low, inclusive: bool, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
    if value != value or value in (float("inf"), float("-inf")) or (value < low if inclusive else value <= low):
        raise argparse.ArgumentTypeError(f"{text}: give {what}")  # NaN, infinite, or out of range
    return value


def positive_int(text: str) -> int:
    return _number(int, text, 1, True, "a positive whole number")


def non_negative_int(text: str) -> int:
    return _number(int, text, 0, True, "a whole number >= 0")


def positive_float(text: str) -> float:
    return _number(float, text, 0.0, False, "a number > 0")


def non_negative_float(text: str) -> float:
    return _number(float, text, 0.0, True, "a number >= 0")


def probability(text: str) -> float:
    """A number in (0, 1] (top-p)."""
    value = _number(float, text, 0.0, False, "a number in (0, 1]")
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text}: give a number in (0, 1]")
    return value


def add(commands, name: str, help: str, examples: str = ""):
    """A subcommand with its runnable examples as the epilog."""
    return commands.add_parser(name, help=help, description=help, epilog=examples.strip() or None,
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def store(args, config=None):
    """The data store: project-generated schema samples if asked for, else a mirror (REPRO_DATA_MIRROR, then
    --mirror, then the config's data.mirror), else the download cache."""
    from repro.data import DataStore

    if getattr(args, "generated_samples", None):  # project-generated schema samples win over any mirror
        return DataStore(mirror=args.generated_samples)
    return DataStore.from_env(mirror=getattr(args, "mirror", None) or (config.data.mirror if config else None))


def meta_path(out: str | Path) -> Path:
    """The .meta.json sidecar of a .jsonl output."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + ".meta.json")


def provenance(paths) -> list[dict]:
    """Files with their sha256."""
    from repro.io import sha256_file

    return [{"path": str(path), "sha256": sha256_file(path)} for path in sorted(set(paths))]


class TrackingStore:
    """Wraps a DataStore and remembers which files were read, for the provenance sidecar."""

    def __init__(self, inner):
        self.inner, self.touched = inner, []

    def path(self, source_name: str, path: str):
        local = self.inner.path(source_name, path)
        self.touched.append(local)
        return local
