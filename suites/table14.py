"""Table XIV: COCO minival bounding-box AP, Faster R-CNN with ResNet-50/101 (± BA²M)."""

from suites._coco import MMDET_2X, coco_suite

SUITE = coco_suite(
    name="table14",
    table="XIV",
    title="Object detection single-model results on COCO minival (bbox AP), Faster R-CNN",
    detector="Faster R-CNN",
    ap="bb",
    rows=(
        ("ResNet-50", "resnet50", "baseline", (37.60, 58.90, 40.90, 21.80, 41.50, 48.80)),
        ("ResNet-50", "resnet50", "ba2m", (38.50, 60.00, 41.90, 22.20, 42.10, 49.80)),
        ("ResNet-101", "resnet101", "baseline", (39.40, 60.60, 43.00, 22.10, 43.60, 52.10)),
        ("ResNet-101", "resnet101", "ba2m", (40.60, 62.10, 44.40, 22.70, 44.30, 53.60)),
    ),
    notes=f"Single-model results. {MMDET_2X}",
)
