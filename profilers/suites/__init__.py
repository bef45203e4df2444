"""The registry of measurement suites: `gemm`, `conv`, `vector`, `attention`, `blocks`,
`validation`.

A suite lists its points for a device (deterministic and spread-ordered) and builds the
workload of each; adding a suite is one module with a class decorated `@register_suite`.
"""
from __future__ import annotations

import importlib

from perfmodel.errors import PerfmodelError
from profilers.suites.base import SUITES, Suite, register_suite

__all__ = ["DEFAULT_SUITES", "SUITES", "Suite", "register_suite", "get_suite", "suite_names"]

_MODULES = ("gemm", "conv", "vector", "attention", "blocks", "validation")
DEFAULT_SUITES = ",".join(_MODULES)  # what a profile run measures unless told


def _load() -> None:
    for name in _MODULES:
        importlib.import_module(f"profilers.suites.{name}")


def suite_names() -> list[str]:
    """Names of the registered suites, in their default run order."""
    _load()
    return [n for n in _MODULES if n in SUITES] + [n for n in SUITES if n not in _MODULES]


def get_suite(name: str) -> Suite:
    """An instance of the suite called `name`."""
    _load()
    if name not in SUITES:
        raise PerfmodelError(f"unknown suite {name!r}; expected one of {', '.join(SUITES)}")
    return SUITES[name]()
