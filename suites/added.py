"""Rows a user adds to a suite that compares attention methods: ``run --add-method eca``.

Each added method gets one row per backbone of the suite, beside that backbone's baseline
and with its setting and training: the same recipe, seeds and evaluation as the paper's rows
of the backbone. An added row has no paper value and is marked as the user's
(``Row.added``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from suites.base import Row, Suite


class AddMethodError(ValueError):
    """A method that cannot be added to a suite (the message says why and what to do)."""


def baselines(suite: Suite) -> list[Row]:
    """The suite's baseline rows that train (one per backbone and setting)."""
    if suite.recipe is None or suite.task != "classification":
        return []
    seen: dict[tuple, Row] = {}
    for row in suite.rows:
        if row.method == "baseline" and not row.eval and row.arch is not None:
            seen.setdefault((row.backbone, row.arch, row.setting), row)
    return list(seen.values())


def compares_methods(suite: Suite) -> bool:
    """Whether methods can be added to ``suite``: a classification table with baselines."""
    return bool(baselines(suite))


def add_methods(suite: Suite, methods: Sequence[str]) -> Suite:
    """``suite`` with a row for each of ``methods`` after each backbone's rows, where that
    backbone has no row of the method yet."""
    if not methods:
        return suite
    if not compares_methods(suite):
        raise AddMethodError(f"{suite.name} has no baseline rows to set a method beside; add "
                             "methods to a table that compares them (e.g. table5, table6, "
                             "table11, table12)")
    rows = list(suite.rows)
    for method in dict.fromkeys(methods):
        new = [_added(base, method) for base in baselines(suite)
               if not any(r.backbone == base.backbone and r.method == method
                          and r.setting == base.setting for r in rows)]
        if not new:
            raise AddMethodError(f"every backbone of {suite.name} already has a {method} row; "
                                 "run the suite without --add-method for it")
        for row in new:
            last = max(i for i, r in enumerate(rows) if r.backbone == row.backbone)
            rows.insert(last + 1, row)
    return replace(suite, rows=tuple(rows))


def _added(base: Row, method: str) -> Row:
    return Row(base.backbone, base.arch, method, base.setting, train=dict(base.train),
               added=True, note="added with --add-method: not in the paper")
