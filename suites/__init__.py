"""One declaration per paper table and figure: a module of this package that defines ``SUITE``
(a :class:`Suite`) is a suite, found by :func:`all_suites`, :func:`get` and :func:`find`.

Adding a table is adding one module: its name, paper numbering, rows, figures and headline
statistic are all in its ``SUITE``. Suites are listed in the paper's order, derived from their
numbering: tables by numeral, then figures by number, then sections of the text ("III-D"), then
suites that declare another paper's table (``he2016``, a published anchor).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache
from typing import Any

from suites.base import METRICS, FigureKind, FigureSpec, PaperPoint, Recipe, Row, Suite

_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


class UnknownSuiteError(KeyError):
    """No suite of that name."""

    def __str__(self) -> str:
        return f"unknown suite {self.args[0]!r}; choose one of {', '.join(names())}"


def roman_value(numeral: str) -> int | None:
    """``"XIV"`` -> 14; None when ``numeral`` is not a plain roman numeral."""
    if not re.fullmatch(r"[IVXLC]+", numeral):
        return None
    values = [_ROMAN[c] for c in numeral]
    total = sum(-v if nxt > v else v for v, nxt in zip(values, values[1:] + [0]))
    return total if total > 0 else None


def paper_order(suite: Suite) -> tuple[int, float, str]:
    """Sort key: tables by numeral, then figures ("Fig. 5") by number, then sections of the
    text ("III-D"), then suites from other papers ("He et al. 2016")."""
    numeral = roman_value(suite.table)
    if numeral is not None:
        return (0, numeral, suite.table)
    fig = re.fullmatch(r"Fig\. *(\d+)", suite.table)
    if fig:
        return (1, int(fig[1]), suite.table)
    section = re.fullmatch(r"([IVXLC]+)-[A-Z]", suite.table)
    return (2, 0, suite.table) if section and roman_value(section[1]) else (3, 0, suite.table)


@cache
def _registry() -> dict[str, Suite]:
    """Suite name -> suite, from every module of the package that defines ``SUITE``."""
    found: dict[str, Suite] = {}
    tables: dict[str, str] = {}
    for info in pkgutil.iter_modules(__path__):
        suite = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SUITE", None)
        if not isinstance(suite, Suite):
            continue
        for key, seen, what in ((suite.name, found, "name"), (suite.table, tables, "numbering")):
            if key in seen:
                raise ValueError(f"suites.{info.name}: suite {what} {key!r} is declared twice")
        found[suite.name] = suite
        tables[suite.table] = suite.name
    return {s.name: s for s in sorted(found.values(), key=paper_order)}


def refresh() -> tuple[str, ...]:
    """Look for suite modules again (after one was added at run time); the names found."""
    _registry.cache_clear()
    return names()


def names() -> tuple[str, ...]:
    """Every suite's CLI name, in the paper's order."""
    return tuple(_registry())


def get(name: str) -> Suite:
    """The suite called ``name`` ("table5", "fig5", "infer-batch")."""
    try:
        return _registry()[name]
    except KeyError:
        raise UnknownSuiteError(name) from None


def find(word: str) -> Suite | None:
    """The suite named ``word`` or numbered ``word`` in the paper ("V", "fig. 5", "III-D";
    any case); None if there is none."""
    if word in _registry():
        return _registry()[word]
    return next((s for s in _registry().values() if s.table.upper() == word.upper()), None)


def all_suites() -> list[Suite]:
    """Every suite, in the paper's order."""
    return list(_registry().values())


def __getattr__(attr: str) -> Any:
    if attr == "NAMES":  # every suite's CLI name, in the paper's order
        return names()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["METRICS", "NAMES", "FigureKind", "FigureSpec", "PaperPoint", "Recipe", "Row",
           "Suite", "UnknownSuiteError", "all_suites", "find", "get", "names", "paper_order",
           "refresh", "roman_value"]
