"""Table XIV: COCO minival bounding-box AP, Faster R-CNN with ResNet-50/101 (± BA²M)."""

from suites._rows import COCO_AP, detection
from suites.base import Row, Suite

_KEYS = tuple(f"{k}_bb" for k in COCO_AP)


def _frcnn(backbone: str, arch: str, method: str, *cells: float) -> Row:
    return detection(backbone, arch, method, "Faster R-CNN", _KEYS, cells)


SUITE = Suite(
    name="table14",
    table="XIV",
    title="Object detection single-model results on COCO minival (bbox AP), Faster R-CNN",
    dataset="coco",
    form="imagenet",
    task="detection",
    metrics=_KEYS,
    recipe=None,
    seeds=1,
    rows=(
        _frcnn("ResNet-50", "resnet50", "baseline", 37.60, 58.90, 40.90, 21.80, 41.50, 48.80),
        _frcnn("ResNet-50", "resnet50", "ba2m", 38.50, 60.00, 41.90, 22.20, 42.10, 49.80),
        _frcnn("ResNet-101", "resnet101", "baseline", 39.40, 60.60, 43.00, 22.10, 43.60, 52.10),
        _frcnn("ResNet-101", "resnet101", "ba2m", 40.60, 62.10, 44.40, 22.70, 44.30, 53.60),
    ),
    notes="Single-model results. MMDetection, 2x schedule (24 epochs, lr 0.01, x0.1 at 16 and "
    "22, momentum 0.9, weight decay 1e-4), trained on COCO train (118k), tested on minival.",
)
