"""The declaration shared by the COCO tables (XIV, XV, XVI): one detector, bbox or mask AP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from suites._rows import COCO_AP, Cell, detection
from suites.base import Suite
from suites.recipes import MMDET_COCO_2X

#: The COCO tables' training, as the paper describes it.
MMDET_2X = ("MMDetection, 2x schedule (24 epochs, lr 0.01, x0.1 at 16 and 22, momentum 0.9, "
            "weight decay 1e-4), trained on COCO train (118k), tested on minival.")


def coco_suite(*, name: str, table: str, title: str, detector: str,
               ap: Literal["bb", "mask"],
               rows: Sequence[tuple[str, str, str, Sequence[Cell]]], notes: str) -> Suite:
    """A COCO minival table: ``rows`` are (backbone, arch, method, AP cells in
    :data:`COCO_AP` order); the detector is every row's setting."""
    keys = tuple(f"{k}_{ap}" for k in COCO_AP)
    return Suite(
        name=name,
        table=table,
        title=title,
        dataset="coco",
        form="imagenet",
        task="detection",
        metrics=keys,
        recipe=MMDET_COCO_2X,
        seeds=1,
        rows=tuple(detection(backbone, arch, method, detector, keys, cells)
                   for backbone, arch, method, cells in rows),
        notes=notes,
    )
