"""Data layer: source registry, fetching, converters, and CUT instance building."""
from repro.data.converters import DATASETS, prepare
from repro.data.errors import ChecksumError, DataError
from repro.data.fetch import DataStore
from repro.data.instances import build_instances

__all__ = ["DATASETS", "prepare", "DataError", "ChecksumError", "DataStore", "build_instances"]
