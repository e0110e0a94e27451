"""What a module tells the training harness about itself, by structure (no base class).

The harness records these without importing any concrete module: a module is
:class:`BatchAware` or :class:`ReportsDiagnostics` when it has the members below
(``isinstance`` checks that they exist). BA²M (``models/ba2m.py``) is both.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class BatchAware(Protocol):
    """A module whose output depends on the other samples of its batch (BA²M).

    ``eval_mode``: how it behaves at test time ("batch" = weighs the test batch, "identity" =
    deactivated); ``batch_scope``: what its batch is under data parallelism ("local" = this
    process's batch, "global" = the batch gathered over the processes)."""

    batch_dependent: bool
    eval_mode: str
    batch_scope: str


@runtime_checkable
class ReportsDiagnostics(Protocol):
    """A module that reports training statistics per epoch (BA²M: its weight shares)."""

    def diagnostics(self) -> dict[str, float]: ...
