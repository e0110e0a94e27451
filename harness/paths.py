"""Where the harness writes: every file name it makes from a suite, a job, a label or a CLI
argument goes through :func:`inside`, so nothing lands outside the chosen results or reports
folder (no ``..``, no absolute paths, no separators smuggled in a name)."""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import UserError

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def safe_name(name: str) -> str:
    """``name`` as one harmless file-name component: runs of other characters become ``_``,
    leading dots are dropped (no hidden files, no ``..``)."""
    cleaned = _UNSAFE.sub("_", str(name)).lstrip(".")
    return cleaned or "_"


def inside(root: str | Path, *names: str) -> Path:
    """``root/name1/name2...`` with each name made safe; raises :class:`UserError` if the
    result would still resolve outside ``root`` (e.g. through a symlink)."""
    base = Path(root)
    path = base.joinpath(*(safe_name(n) for n in names))
    if not path.resolve().is_relative_to(base.resolve()):
        raise UserError(f"refusing to write {path}: it resolves outside {base}; choose a folder "
                        "without links that lead elsewhere")
    return path
