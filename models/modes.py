"""Switching the evaluation behaviour of batch-aware modules (BA²M's ``eval_mode``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(net: nn.Module, mode: str | None) -> Iterator[None]:
    """Within the block, every module of ``net`` with an ``eval_mode`` attribute (BA²M:
    "batch" = active at test time, "identity" = deactivated) uses ``mode``; None changes
    nothing. The previous modes are restored on exit."""
    modules = [m for m in net.modules() if hasattr(m, "eval_mode")] if mode else []
    before = [m.eval_mode for m in modules]
    for m in modules:
        m.eval_mode = mode
    try:
        yield
    finally:
        for m, b in zip(modules, before):
            m.eval_mode = b
