"""Data layer: source registry, fetching, converters, and CUT instance building."""
from repro.data.converters import DATASETS, prepare
from repro.data.fetch import DataStore
from repro.data.instances import build_instances
from repro.errors import ChecksumError, DataError

__all__ = ["DATASETS", "prepare", "DataError", "ChecksumError", "DataStore", "build_instances"]
