"""Names of stored extra evaluations (``ResultsDB.record_eval``'s ``eval_key``) that a writer
and a reader in different stages must agree on: the §III-D audit's points."""

from __future__ import annotations

import re
from typing import NamedTuple

_AUDIT = re.compile(r"audit:mode=(?P<mode>[\w-]+),order=(?P<order>[\w-]+),batch_size=(?P<b>\d+)")


class AuditPoint(NamedTuple):
    """What one audit eval key names."""

    mode: str  # BA²M's eval mode: "batch" or "identity"
    order: str  # test order: "shuffled" or "sorted"
    batch_size: int


def audit_key(mode: str, order: str, batch_size: int) -> str:
    """The eval key under which one audit point is stored."""
    return f"audit:mode={mode},order={order},batch_size={batch_size}"


def parse_audit_key(key: str) -> AuditPoint | None:
    """The audit point an eval key names, or None for any other key."""
    m = _AUDIT.fullmatch(key)
    return None if m is None else AuditPoint(m["mode"], m["order"], int(m["b"]))
