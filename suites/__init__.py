"""One declaration per paper table and figure: a module of this package that defines ``SUITE``
(a :class:`Suite`) is a suite, found by :func:`all_suites`, :func:`get` and :func:`find`.

Adding a table is adding one module: its name, paper numbering, rows, figures and headline
statistic are all in its ``SUITE``. Suites are listed in the paper's order, derived from their
numbering: tables by numeral, then figures by number, then sections of the text ("III-D"), then
suites that declare another paper's table (``he2016``, a published anchor).

Suites from outside the package (docs/extending.md) come from an entry point in the group
``ba2m_bench.suites`` (its name is the suite's; read from the installed packages' metadata and
loaded when the suite is first named, or when every suite is listed) or from a ``--plugin``
module that defines ``SUITE`` (:func:`register_module`). A name or numbering declared twice is
refused, naming both places (:class:`SuitePluginError`).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache
from importlib.metadata import EntryPoint
from types import ModuleType
from typing import Any

from models.catalogue import (SUITE_GROUP, ModelConfigError, entry_point_source,
                              group_entry_points, import_plugin)
from suites.base import METRICS, FigureKind, FigureSpec, PaperPoint, Recipe, Row, Suite

_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


class UnknownSuiteError(KeyError):
    """No suite of that name."""

    def __str__(self) -> str:
        return f"unknown suite {self.args[0]!r}; choose one of {', '.join(names())}"


class SuitePluginError(ValueError):
    """A suite plugin that cannot be used: it does not import, its entry point names a
    missing object or no :class:`Suite`, or its name or numbering is declared twice."""


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
def _builtin() -> dict[str, Suite]:
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


#: Suites from plugins, by name: (suite, where it came from).
_plugged: dict[str, tuple[Suite, str]] = {}


def _registry() -> dict[str, Suite]:
    """Suite name -> suite: the built-in ones and the plugins' loaded so far, in order."""
    if not _plugged:
        return _builtin()
    found = {**_builtin(), **{n: s for n, (s, _) in _plugged.items()}}
    return {s.name: s for s in sorted(found.values(), key=paper_order)}


@cache
def _entry_points() -> dict[str, tuple[EntryPoint, ...]]:
    """Suite name -> the installed entry points declaring it (checked: a built-in suite's
    name, or one declared by two entry points, is refused)."""
    found = group_entry_points(SUITE_GROUP)
    for name, eps in found.items():
        if name in _builtin():
            raise SuitePluginError(f"suite {name!r} is declared twice: by built-in "
                                   f"({_builtin_module(name)}) and by "
                                   f"{entry_point_source(eps[0])}; uninstall or rename the "
                                   "plugin's")
        if len(eps) > 1:
            raise SuitePluginError(f"suite {name!r} is declared twice: by "
                                   + " and by ".join(entry_point_source(ep) for ep in eps)
                                   + "; uninstall or rename one of them")
    return found


def _builtin_module(name: str) -> str:
    suite = _builtin()[name]
    return next((m.__name__ for m in _suite_modules() if getattr(m, "SUITE", None) is suite),
                "suites")


def _suite_modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{i.name}") for i in pkgutil.iter_modules(__path__)]


def register_suite(suite: Any, origin: str) -> Suite:
    """Add a plugin's ``suite`` (``origin`` says where it came from, for messages); a name or
    numbering another suite has is refused, naming both."""
    if not isinstance(suite, Suite):
        raise SuitePluginError(f"{origin}: SUITE is a {type(suite).__name__}, not a "
                               "suites.Suite; declare SUITE = Suite(...) (suites/base.py)")
    if suite.name in _builtin():
        raise SuitePluginError(f"suite {suite.name!r} is declared twice: by built-in "
                               f"({_builtin_module(suite.name)}) and by {origin}; rename "
                               "the plugin's")
    old = _plugged.get(suite.name)
    if old is not None and old[0] != suite:
        raise SuitePluginError(f"suite {suite.name!r} is declared twice: by {old[1]} and by "
                               f"{origin}; rename one of them")
    if old is None and suite.name in _entry_points() and not origin.startswith("entry point"):
        raise SuitePluginError(f"suite {suite.name!r} is declared twice: by "
                               f"{entry_point_source(_entry_points()[suite.name][0])} and by "
                               f"{origin}; rename one of them")
    same = next((s for s in _registry().values()
                 if s.name != suite.name and s.table.upper() == suite.table.upper()), None)
    if same is not None:
        raise SuitePluginError(f"{origin}: suite {suite.name!r} is numbered {suite.table!r}, "
                               f"as suite {same.name!r} is; give it a numbering of its own")
    _plugged[suite.name] = (suite, origin)
    return suite


def register_module(module: ModuleType) -> Suite | None:
    """Add the suite a ``--plugin`` module defines as ``SUITE`` (None: it defines none)."""
    if not hasattr(module, "SUITE"):
        return None
    return register_suite(module.SUITE, f"--plugin {module.__name__}")


def _load(name: str) -> Suite:
    """Load the suite ``name`` from its entry point."""
    ep = _entry_points()[name][0]
    where = entry_point_source(ep)
    module, _, attr = ep.value.partition(":")
    try:
        import_plugin(module)
    except ModelConfigError as exc:
        raise SuitePluginError(f"{where}: {exc}") from None
    obj: Any = importlib.import_module(module)
    for part in (attr or "SUITE").split("."):
        if not hasattr(obj, part):
            raise SuitePluginError(f"{where} names a missing object: {module} has no "
                                   f"{attr or 'SUITE'!r}; fix the entry point in the package's "
                                   "pyproject.toml")
        obj = getattr(obj, part)
    if isinstance(obj, Suite) and obj.name != name:
        raise SuitePluginError(f"{where} declares suite {obj.name!r}; name the entry point "
                               "as the suite")
    return register_suite(obj, where)


def refresh() -> tuple[str, ...]:
    """Look for suite modules and entry points again (after one was added at run time) and
    forget the plugins' suites; the built-in suites' names found (entry points are read, and
    checked, when a suite is next asked for)."""
    _builtin.cache_clear()
    _entry_points.cache_clear()
    _plugged.clear()
    return tuple(_builtin())


def names() -> tuple[str, ...]:
    """Every suite's CLI name, in the paper's order (entry points not loaded yet last)."""
    loaded = tuple(_registry())
    return loaded + tuple(n for n in _entry_points() if n not in loaded)


def get(name: str) -> Suite:
    """The suite called ``name`` ("table5", "fig5", "infer-batch"; a plugin's is loaded)."""
    found = _registry().get(name)
    if found is not None:
        _entry_points()  # a plugin declaring a built-in's name is refused all the same
        return found
    if name in _entry_points():
        return _load(name)
    raise UnknownSuiteError(name)


def find(word: str) -> Suite | None:
    """The suite named ``word`` or numbered ``word`` in the paper ("V", "fig. 5", "III-D";
    any case); None if there is none."""
    if word in names():
        return get(word)
    numbered = lambda every: next(  # noqa: E731
        (s for s in every if s.table.upper() == word.upper()), None)
    return numbered(loaded()) or numbered(all_suites())


def loaded() -> list[Suite]:
    """The built-in suites and the plugins' loaded so far (no entry point is loaded)."""
    return list(_registry().values())


def all_suites() -> list[Suite]:
    """Every suite, in the paper's order (every plugin's entry point loaded)."""
    for name in _entry_points():
        if name not in _plugged:
            _load(name)
    return list(_registry().values())


def __getattr__(attr: str) -> Any:
    if attr == "NAMES":  # every suite's CLI name, in the paper's order
        return names()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["METRICS", "NAMES", "FigureKind", "FigureSpec", "PaperPoint", "Recipe", "Row",
           "Suite", "SuitePluginError", "UnknownSuiteError", "all_suites", "find", "get",
           "loaded", "names", "paper_order", "refresh", "register_module", "register_suite",
           "roman_value"]
