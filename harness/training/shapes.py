"""Offline smoke data that really detects: seeded images of squares, discs and triangles.

No annotated detection data ships in any package reachable here, so the detection smoke runs
train on this. Each image holds 1-3 non-overlapping shapes of random size and colour on a noisy
background; every shape has a class, a tight integer box and a mask. :func:`write_coco` and
:func:`write_voc` write the same images out as a COCO JSON + PNG files and as a VOCdevkit tree,
so smoke runs go through torchvision's real ``CocoDetection`` and ``VOCDetection`` loaders
(:mod:`harness.training.detdata`).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

#: Class names; label k (1-based, 0 is the background) is ``CLASSES[k - 1]``.
CLASSES = ("square", "disc", "triangle")


@dataclass(frozen=True)
class ShapesImage:
    """One image (H, W, 3 uint8), its boxes (K, 4: x0, y0, x1, y1 in pixels, x1/y1
    exclusive, integers), labels (K,: 1..3) and masks (K, H, W bool)."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def _shape_mask(kind: int, size: int) -> np.ndarray:
    """A side x side mask of ``kind`` filling its square (pixel centres decide)."""
    c = np.arange(size) + 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    if kind == 1:  # square
        return np.ones((size, size), bool)
    if kind == 2:  # disc
        r = size / 2
        return (xx - r) ** 2 + (yy - r) ** 2 <= r * r
    # triangle, apex at the top centre: |x - s/2| <= y / 2
    return np.abs(xx - size / 2) <= yy / 2


def shapes_image(rng: np.random.Generator, size: int = 96) -> ShapesImage:
    """One image of 1-3 shapes, at least 2 pixels apart, each 1/5 to 1/2 of the image wide."""
    image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8) + rng.integers(0, 40, 3,
                                                                                  np.uint8)
    boxes, labels, masks = [], [], []
    for _ in range(int(rng.integers(1, 4))):
        for _try in range(50):
            side = int(rng.integers(size // 5, size // 2 + 1))
            x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
            box = (x, y, x + side, y + side)
            if all(box[0] >= b[2] + 2 or b[0] >= box[2] + 2 or box[1] >= b[3] + 2
                   or b[1] >= box[3] + 2 for b in boxes):
                break
        else:
            continue
        kind = int(rng.integers(1, len(CLASSES) + 1))
        local = _shape_mask(kind, side)
        mask = np.zeros((size, size), bool)
        mask[y:y + side, x:x + side] = local
        image[mask] = rng.integers(120, 256, 3, np.uint8)
        ys, xs = np.nonzero(mask)
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
        labels.append(kind)
        masks.append(mask)
    return ShapesImage(image, np.array(boxes, np.int64).reshape(-1, 4),
                       np.array(labels, np.int64), np.stack(masks))


def shapes_dataset(n: int, size: int = 96, seed: int = 0) -> list[ShapesImage]:
    """``n`` images, the same for the same ``seed``."""
    rng = np.random.default_rng(seed)
    return [shapes_image(rng, size) for _ in range(n)]


def write_coco(images: list[ShapesImage], root: Path, split: str = "train") -> Path:
    """``root/<split>/NNNNNN.png`` and ``root/annotations/instances_<split>.json`` (boxes as
    x, y, w, h; masks as compressed RLE). Returns the annotation file."""
    from pycocotools import mask as mask_utils

    folder = Path(root) / split
    folder.mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    for i, item in enumerate(images, 1):
        name = f"{i:06d}.png"
        Image.fromarray(item.image).save(folder / name)
        h, w = item.image.shape[:2]
        entries.append({"id": i, "file_name": name, "height": h, "width": w})
        for box, label, mask in zip(item.boxes, item.labels, item.masks):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            x0, y0, x1, y1 = (int(v) for v in box)
            annotations.append({
                "id": len(annotations) + 1, "image_id": i, "category_id": int(label),
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": int(mask.sum()), "iscrowd": 0,
                "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
            })
    out = Path(root) / "annotations" / f"instances_{split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    categories = [{"id": k, "name": c, "supercategory": "shape"}
                  for k, c in enumerate(CLASSES, 1)]
    out.write_text(json.dumps({"images": entries, "annotations": annotations,
                               "categories": categories}))
    return out


def write_voc(images: list[ShapesImage], root: Path, split: str = "trainval",
              year: str = "2007") -> Path:
    """A ``root/VOCdevkit/VOC<year>`` tree: JPEGImages/NNNNNN.jpg, Annotations/NNNNNN.xml (1-based
    inclusive pixel boxes, as VOC writes them; ``difficult`` 0) and ImageSets/Main/<split>.txt.
    Returns the VOC<year> folder. JPEG is lossy: pixels differ slightly, boxes do not."""
    voc = Path(root) / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for i, item in enumerate(images, 1):
        stem = f"{split}{i:06d}"
        ids.append(stem)
        Image.fromarray(item.image).save(voc / "JPEGImages" / f"{stem}.jpg", quality=95)
        h, w = item.image.shape[:2]
        ann = ET.Element("annotation")
        ET.SubElement(ann, "folder").text = f"VOC{year}"
        ET.SubElement(ann, "filename").text = f"{stem}.jpg"
        size = ET.SubElement(ann, "size")
        for tag, v in (("width", w), ("height", h), ("depth", 3)):
            ET.SubElement(size, tag).text = str(v)
        ET.SubElement(ann, "segmented").text = "0"
        for box, label in zip(item.boxes, item.labels):
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = CLASSES[int(label) - 1]
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "0"
            bnd = ET.SubElement(obj, "bndbox")
            x0, y0, x1, y1 = (int(v) for v in box)
            for tag, v in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
                ET.SubElement(bnd, tag).text = str(v)
        ET.ElementTree(ann).write(voc / "Annotations" / f"{stem}.xml")
    (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in ids))
    return voc


def as_tensors(item: ShapesImage) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(image (3, H, W) float in [0, 1], {boxes float, labels, masks uint8}), the form
    torchvision's detectors take."""
    import torch

    image = torch.from_numpy(item.image).permute(2, 0, 1).float().div(255)
    return image, {"boxes": torch.from_numpy(item.boxes).float(),
                   "labels": torch.from_numpy(item.labels),
                   "masks": torch.from_numpy(item.masks).to(torch.uint8)}
