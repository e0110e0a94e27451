"""Table XV: COCO minival bounding-box AP, Mask R-CNN with ResNet-50/101 (± BA²M)."""

from suites._coco import MMDET_2X, coco_suite

SUITE = coco_suite(
    name="table15",
    table="XV",
    title="Object detection single-model results on COCO minival (bbox AP), Mask R-CNN",
    detector="Mask R-CNN",
    ap="bb",
    rows=(
        ("ResNet-50", "resnet50", "baseline", (38.30, 59.70, 41.30, 22.50, 41.70, 50.40)),
        ("ResNet-50", "resnet50", "ba2m", (39.80, 60.90, 43.70, 23.00, 43.10, 52.10)),
        ("ResNet-101", "resnet101", "baseline", (40.40, 61.50, 44.10, 22.20, 44.80, 52.90)),
        ("ResNet-101", "resnet101", "ba2m", (42.20, 62.90, 46.60, 24.00, 46.70, 55.30)),
    ),
    notes=f"Single-model results. {MMDET_2X}",
)
