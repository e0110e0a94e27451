"""Switching the evaluation behaviour of batch-aware modules (BA²M's ``eval_mode``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from models.protocols import BatchAware


@contextlib.contextmanager
def eval_mode(net: nn.Module, mode: str | None) -> Iterator[None]:
    """Within the block, every :class:`~models.protocols.BatchAware` module of ``net`` (BA²M:
    "batch" = active at test time, "identity" = deactivated) uses ``mode``; None changes
    nothing. The previous modes are restored on exit."""
    modules = [m for m in net.modules() if isinstance(m, BatchAware)] if mode else []
    before = [m.eval_mode for m in modules]
    for m in modules:
        m.eval_mode = mode
    try:
        yield
    finally:
        for m, b in zip(modules, before):
            m.eval_mode = b
