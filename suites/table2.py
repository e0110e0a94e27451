"""Table II: BA²M across ResNet variants on ImageNet-1K (repeated in Table XII)."""

from suites._rows import pair
from suites.base import Suite
from suites.recipes import IMAGENET_BAM

_KEYS = ("params_m", "flops_g", "top1_err")

SUITE = Suite(
    name="table2",
    table="II",
    title="Image classification results on ImageNet-1K across ResNet architectures",
    dataset="imagenet",
    form="imagenet",
    task="classification",
    metrics=_KEYS,
    recipe=IMAGENET_BAM,
    rows=(
        *pair("ResNet-18", "resnet18", (11.69, 1.81, 29.60), (12.28, 1.92, 28.62), _KEYS),
        *pair("ResNet-34", "resnet34", (21.80, 3.66, 26.69), (21.92, 3.77, 25.15), _KEYS),
        *pair("WRN-18 (w=1.5)", "wrn18x1.5", (25.88, 3.87, 26.85), (28.43, 4.69, 23.60), _KEYS),
        *pair("WRN-18 (w=2)", "wrn18x2", (45.62, 6.70, 25.63), (47.88, 7.56, 23.60), _KEYS),
        *pair("ResNeXt-50", "resnext50_32x4d", (25.03, 3.77, 22.85), (27.25, 4.47, 20.98), _KEYS),
        *pair("ResNeXt-101", "resnext101_32x4d", (44.18, 7.51, 21.54), (45.51, 8.23, 20.05),
              _KEYS),
    ),
    notes="Top-1 only (Table XII repeats these rows with top-5). Both WRN-18 + BA²M rows are "
    "printed with 23.60 top-1 error (gains -3.25 and -2.03, each consistent with its "
    "baseline). BA²M adds 0.59 M to ResNet-18 but 0.12 M to ResNet-34.",
)
