"""Finds benchmarks: every public module ``bench/NAME.py`` that defines ``BENCHMARK`` is benchmark NAME."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from bench._harness import Benchmark

_PACKAGE_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """Names of the candidate benchmark modules, without importing them."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(_PACKAGE_DIR)])
        if not info.ispkg and not info.name.startswith("_")
    )


def load(name: str) -> Benchmark:
    """The benchmark registered under module name ``name``; ``KeyError`` if there is none."""
    if name not in names():
        raise KeyError(name)
    module = importlib.import_module(f"bench.{name}")
    benchmark = getattr(module, "BENCHMARK", None)
    if benchmark is None:
        raise KeyError(name)
    if not isinstance(benchmark, Benchmark):
        raise TypeError(f"bench.{name}.BENCHMARK is a {type(benchmark).__name__}, not a Benchmark")
    if benchmark.name != name:
        raise ValueError(
            f"bench.{name}.BENCHMARK is named {benchmark.name!r}; it must be named after its module"
        )
    return benchmark


def discover() -> dict[str, Benchmark]:
    """All benchmarks, by name (imports every candidate module)."""
    found: dict[str, Benchmark] = {}
    for name in names():
        try:
            found[name] = load(name)
        except KeyError:
            continue
    return found
