"""A planned job: one training run of a suite row at one seed, with its resolved config."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from suites.base import Row


@dataclass(frozen=True)
class Job:
    """One training run: a row (or several rows sharing it) at one seed."""

    suite: str
    row: Row
    seed: int
    config: dict[str, Any]
    config_hash: str
    group_hash: str
    unavailable: str | None  # why the harness cannot run it yet

    @property
    def label(self) -> str:
        """The row's label, naming what the config builds (see :func:`job_label`)."""
        return job_label(self.row, self.config)


def job_label(row: Row, config: dict[str, Any]) -> str:
    """``row.label`` with the backbone and method the job's model config builds in place of
    the row's where ``--set model.arch=...`` or ``model.attention=...`` changed them
    ("ResNet-20 / ba2m / inside" for Table VII's "ResNet-50 / ba2m / inside" row); the row's
    own label otherwise."""
    model = config.get("model")
    if not isinstance(model, dict):
        return row.label
    backbone, method = row.backbone, row.method
    if model.get("arch") != row.arch:
        backbone = arch_name(str(model.get("arch")))
    if model.get("attention") != row.attention:
        method = model.get("attention") or "baseline"
    return " / ".join([backbone, method] + ([row.setting] if row.setting else []))


def arch_name(arch: str) -> str:
    """How the paper names a zoo architecture: the backbone of a suite row that builds it
    ("resnet50" -> "ResNet-50"), else ResNet-style names spelled out ("resnet20" ->
    "ResNet-20", "preresnet56" -> "PreResNet-56"), else the zoo's name."""
    named = _arch_names().get(arch)
    if named:
        return named
    m = re.fullmatch(r"(pre)?resnet(\d+)", arch)
    return f"{'Pre' if m.group(1) else ''}ResNet-{m.group(2)}" if m else arch


@cache
def _arch_names() -> dict[str, str]:
    import suites

    names: dict[str, str] = {}
    for suite in suites.loaded():  # no plugin suite's entry point loaded just for labels
        for row in suite.rows:
            if row.arch:
                names.setdefault(row.arch, row.backbone)
    return names
