"""Table XVI: COCO minival mask AP, Mask R-CNN with ResNet-50/101 (± BA²M)."""

from suites._coco import coco_suite

SUITE = coco_suite(
    name="table16",
    table="XVI",
    title="Instance segmentation single-model results on COCO minival (mask AP), Mask R-CNN",
    detector="Mask R-CNN",
    ap="mask",
    rows=(
        ("ResNet-50", "resnet50", "baseline", (34.80, 56.10, 36.90, 16.10, 37.20, 52.90)),
        ("ResNet-50", "resnet50", "ba2m", (36.10, 57.80, 38.80, 17.00, 38.70, 52.90)),
        ("ResNet-101", "resnet101", "baseline", (36.50, 58.10, 39.10, 18.40, 40.20, 50.40)),
        ("ResNet-101", "resnet101", "ba2m", (37.70, 59.70, 40.90, 18.60, 41.00, 55.90)),
    ),
    notes="Single-model results, same training as Table XV. The ResNet-101 baseline's mask "
    "APL (50.40) is below ResNet-50's (52.90), and the printed BA²M gain on it (+5.50) is far "
    "larger than any other cell's; the ResNet-50 APL gain is +0.00.",
)
