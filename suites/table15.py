"""Table XV: COCO minival bounding-box AP, Mask R-CNN with ResNet-50/101 (± BA²M)."""

from suites._rows import COCO_AP, detection
from suites.base import Row, Suite

_KEYS = tuple(f"{k}_bb" for k in COCO_AP)


def _mrcnn(backbone: str, arch: str, method: str, *cells: float) -> Row:
    return detection(backbone, arch, method, "Mask R-CNN", _KEYS, cells)


SUITE = Suite(
    name="table15",
    table="XV",
    title="Object detection single-model results on COCO minival (bbox AP), Mask R-CNN",
    dataset="coco",
    form="imagenet",
    task="detection",
    metrics=_KEYS,
    recipe=None,
    seeds=1,
    rows=(
        _mrcnn("ResNet-50", "resnet50", "baseline", 38.30, 59.70, 41.30, 22.50, 41.70, 50.40),
        _mrcnn("ResNet-50", "resnet50", "ba2m", 39.80, 60.90, 43.70, 23.00, 43.10, 52.10),
        _mrcnn("ResNet-101", "resnet101", "baseline", 40.40, 61.50, 44.10, 22.20, 44.80, 52.90),
        _mrcnn("ResNet-101", "resnet101", "ba2m", 42.20, 62.90, 46.60, 24.00, 46.70, 55.30),
    ),
    notes="Single-model results. MMDetection, 2x schedule (24 epochs, lr 0.01, x0.1 at 16 and "
    "22, momentum 0.9, weight decay 1e-4), trained on COCO train (118k), tested on minival.",
)
