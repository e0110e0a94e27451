"""Whether the harness can run a row, from names alone (``models.catalogue``: no torch)."""

from __future__ import annotations

from models.catalogue import has_architecture, method_known
from suites.base import DETECTOR_METHODS, Row, Suite


class NotAvailableError(RuntimeError):
    """A row whose parts the harness does not have yet; never replaced by a fake result."""


def check_available(suite: Suite, row: Row) -> None:
    """Raise :class:`NotAvailableError` naming what is missing for ``row``."""
    if row.available:
        raise NotAvailableError(f"not yet available: {row.available} ({suite.name}: {row.label})")
    if not has_architecture(suite.form, row.arch):
        raise NotAvailableError(
            f"not yet available: {suite.form} architecture {row.arch!r} ({suite.name}: {row.label})"
        )
    plain = row.method == "baseline" or (suite.task == "detection"
                                         and row.method in DETECTOR_METHODS)
    if not plain:
        for name in row.method.split("+"):
            if not method_known(name):
                raise NotAvailableError(
                    f"not yet available: attention method {name!r} ({suite.name}: {row.label})")


def is_available(suite: Suite, row: Row) -> bool:
    """Whether :func:`check_available` lets ``row`` run."""
    try:
        check_available(suite, row)
    except NotAvailableError:
        return False
    return True
