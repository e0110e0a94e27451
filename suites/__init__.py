"""One declaration per paper table and figure; :func:`get` and :func:`all_suites` find them."""

from __future__ import annotations

import importlib

from suites.base import METRICS, Recipe, Row, Suite

#: CLI names in the paper's order.
NAMES = (*(f"table{i}" for i in range(1, 17)), "fig5", "infer-batch")


class UnknownSuiteError(KeyError):
    """No suite of that name."""

    def __str__(self) -> str:
        return f"unknown suite {self.args[0]!r}; choose one of {', '.join(NAMES)}"


def get(name: str) -> Suite:
    """The suite called ``name`` ("table5", "fig5", "infer-batch")."""
    if name not in NAMES:
        raise UnknownSuiteError(name)
    return importlib.import_module(f"suites.{name.replace('-', '_')}").SUITE


def all_suites() -> list[Suite]:
    """Every suite, in the paper's order."""
    return [get(n) for n in NAMES]


__all__ = ["METRICS", "NAMES", "Recipe", "Row", "Suite", "UnknownSuiteError", "all_suites", "get"]
