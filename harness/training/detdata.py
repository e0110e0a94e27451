"""Detection data through torchvision's own loaders: ``CocoDetection`` (transforms v2 wrapper:
boxes, labels, masks) and ``VOCDetection`` (its parsed XML, turned into boxes, labels and the
``difficult`` flags the VOC07 metric needs). Both give ``(image, target)`` with the image a
float tensor in [0, 1] and the target a dict of tensors, boxes as (x0, y0, x1, y1) pixels.

Layouts (``root`` is what ``--data-root`` will name):

- COCO: ``root/annotations/instances_<split>.json`` and the images in ``root/<split>/``
  (``train2017``, ``val2017``).
- VOC: ``root/VOCdevkit/VOC<year>/{Annotations,JPEGImages,ImageSets/Main/<split>.txt}``.

VOC boxes are 1-based and inclusive in the XML; they become (xmin - 1, ymin - 1, xmax, ymax),
whose widths equal VOC's ``xmax - xmin + 1`` (the metric of :mod:`harness.training.detmetrics`
uses these continuous coordinates).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torchvision import datasets
from torchvision.transforms import v2

from harness.training.data import MissingDatasetError

#: The 20 PASCAL VOC classes; label k (1-based) is ``VOC_CLASSES[k - 1]``.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

_TO_TENSOR = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def coco_detection(root: Path, split: str, *, masks: bool = False) -> Any:
    """COCO ``split`` of ``root`` as (image, {boxes, labels, image_id, iscrowd[, masks]})."""
    ann = Path(root) / "annotations" / f"instances_{split}.json"
    images = Path(root) / split
    for path in (ann, images):
        if not path.exists():
            raise MissingDatasetError(f"COCO {split}: {path} not found (expected "
                                      f"{root}/annotations/instances_{split}.json and "
                                      f"{root}/{split}/)")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        base = datasets.CocoDetection(str(images), str(ann), transforms=_TO_TENSOR)
    keys = ("boxes", "labels", "image_id", "iscrowd") + (("masks",) if masks else ())
    return datasets.wrap_dataset_for_transforms_v2(base, target_keys=keys)


def voc_target(annotation: dict[str, Any], classes: Sequence[str] = VOC_CLASSES
               ) -> dict[str, torch.Tensor]:
    """VOCDetection's parsed XML -> boxes (K, 4 float), labels (K,, 1-based) and difficult
    (K,, bool)."""
    objects = annotation["annotation"].get("object", [])
    objects = objects if isinstance(objects, list) else [objects]
    index = {c: k for k, c in enumerate(classes, 1)}
    boxes = [[float(o["bndbox"]["xmin"]) - 1, float(o["bndbox"]["ymin"]) - 1,
              float(o["bndbox"]["xmax"]), float(o["bndbox"]["ymax"])] for o in objects]
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([index[o["name"]] for o in objects], dtype=torch.int64),
        "difficult": torch.tensor([o.get("difficult", "0") == "1" for o in objects],
                                  dtype=torch.bool),
    }


class _VOCTarget:
    """A picklable target transform (data-loader workers) for :func:`voc_target`."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)

    def __call__(self, annotation: dict[str, Any]) -> dict[str, torch.Tensor]:
        return voc_target(annotation, self.classes)


def voc_detection(root: Path, split: str, year: str = "2007",
                  classes: Sequence[str] = VOC_CLASSES) -> Any:
    """VOC ``year`` ``split`` of ``root`` (the folder holding ``VOCdevkit``) as (image,
    {boxes, labels, difficult})."""
    voc = Path(root) / "VOCdevkit" / f"VOC{year}"
    split_file = voc / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.exists():
        raise MissingDatasetError(f"VOC{year} {split}: {split_file} not found (expected "
                                  f"{root}/VOCdevkit/VOC{year}/ImageSets/Main/{split}.txt)")
    return datasets.VOCDetection(str(root), year=year, image_set=split, download=False,
                                 transform=_TO_TENSOR, target_transform=_VOCTarget(classes))
