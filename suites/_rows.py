"""Small helpers shared by the suite declarations, so that rows stay one line each.

A value of ``None`` stands for a cell printed as "-": it is left out of ``Row.paper``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from suites.base import Row

Cell = float | None

#: CIFAR tables' columns: Params (M), FLOPs (G), Error (%).
CIFAR_KEYS = ("params_m", "flops_g", "err")
#: ImageNet tables' columns with top-5: Params (M), FLOPs (G), Top-1 and Top-5 error (%).
IMAGENET_KEYS = ("params_m", "flops_g", "top1_err", "top5_err")
#: COCO AP columns, without the _bb / _mask suffix.
COCO_AP = ("ap", "ap50", "ap75", "aps", "apm", "apl")

#: The detectors a detection table's setting names, as ``models.detection`` builds them.
DETECTORS = {"RetinaNet": "retinanet", "Faster R-CNN": "faster_rcnn", "Mask R-CNN": "mask_rcnn"}


def values(keys: Sequence[str], cells: Sequence[Cell]) -> dict[str, float]:
    """Metric -> printed value; "-" cells (None) are left out."""
    if len(keys) != len(cells):
        raise ValueError(f"{len(cells)} cells for {len(keys)} columns: {cells}")
    return {k: v for k, v in zip(keys, cells) if v is not None}


def row(backbone: str, arch: str | None, method: str, keys: Sequence[str],
        cells: Sequence[Cell], **kwargs: Any) -> Row:
    """One row with its printed cells."""
    return Row(backbone, arch, method, paper=values(keys, cells), **kwargs)


def group(backbone: str, arch: str | None, keys: Sequence[str],
          cells: Iterable[tuple[str, Sequence[Cell]]], **kwargs: Any) -> tuple[Row, ...]:
    """Rows of one backbone block, one per (method, cells), in printed order."""
    return tuple(row(backbone, arch, m, keys, c, **kwargs) for m, c in cells)


def pair(backbone: str, arch: str | None, base: Sequence[Cell], ours: Sequence[Cell],
         keys: Sequence[str] = CIFAR_KEYS) -> tuple[Row, Row]:
    """The baseline row and its + BA²M row."""
    return (row(backbone, arch, "baseline", keys, base), row(backbone, arch, "ba2m", keys, ours))


def detection(backbone: str, arch: str, method: str, detector: str, keys: Sequence[str],
              cells: Sequence[Cell], note: str = "", **model: Any) -> Row:
    """A detection row: the detector (a key of :data:`DETECTORS`) is the setting; ``model``
    are its detector options beyond the backbone and attention (``cls_loss="softmax"``,
    ``sampler="ohem"``)."""
    return row(backbone, arch, method, keys, cells, setting=detector, note=note,
               model={"detector": DETECTORS[detector], **model})
