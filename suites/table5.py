"""Table V: BA²M vs sample-wise attention modules on ImageNet-1K, ResNet-50 and ResNet-101."""

from suites._rows import IMAGENET_KEYS, Cell, group
from suites.base import Suite
from suites.recipes import IMAGENET_BAM

_ = None  # a cell printed as "-"

# method, ResNet-50 cells, ResNet-101 cells: Params (M), FLOPs (G), Top-1 err, Top-5 err
_PRINTED: tuple[tuple[str, tuple[Cell, ...], tuple[Cell, ...]], ...] = (
    ("baseline", (25.56, 3.86, 24.56, 7.50), (44.55, 7.57, 23.38, 6.88)),
    ("se", (28.09, 3.86, 23.14, 6.70), (49.33, 7.58, 22.35, 6.19)),
    ("srm", (25.62, 3.88, 22.87, 6.49), (44.68, 7.62, 21.53, 5.80)),
    ("sk", (26.15, 4.19, 22.46, 6.30), (45.68, 7.98, 21.21, 5.73)),
    ("sge", (25.56, 4.13, 22.42, 6.34), (44.55, 7.86, 21.20, 5.63)),
    ("ge", (31.20, 3.87, 22.00, 5.87), (33.70, 3.87, 21.88, 5.80)),
    ("bam", (25.92, 3.94, 24.02, 7.18), (44.91, 7.65, 22.44, 6.29)),
    ("cbam", (28.09, 3.86, 22.66, 6.31), (49.33, 7.58, 21.51, 5.69)),
    ("gc", (28.08, 3.87, 22.30, 6.34), (49.36, 7.86, 25.36, 7.93)),
    ("aa", (25.80, 4.15, 22.30, 6.20), (45.40, 8.05, 21.30, 5.60)),
    ("sasa", (18.00, 7.20, 22.40, _), (_, _, _, _)),
    ("ba2m", (26.21, 4.32, 21.63, 5.80), (45.87, 8.05, 20.85, 5.58)),
)

SUITE = Suite(
    name="table5",
    table="V",
    title="ImageNet-1K: ResNet-50/101 with SE, SRM, SK, SGE, GE, BAM, CBAM, GC, AA, SASA, BA²M",
    dataset="imagenet",
    form="imagenet",
    task="classification",
    metrics=IMAGENET_KEYS,
    recipe=IMAGENET_BAM,
    rows=(
        *group("ResNet-50", "resnet50", IMAGENET_KEYS, ((m, r50) for m, r50, _r101 in _PRINTED)),
        *group("ResNet-101", "resnet101", IMAGENET_KEYS,
               ((m, r101) for m, _r50, r101 in _PRINTED)),
    ),
    notes="Values as printed. SASA has only ResNet-50 values (top-5 '-'); its ResNet-101 row is "
    "kept with no values. GE on ResNet-101 is printed with fewer params and FLOPs (33.70 M, "
    "3.87 G) than plain ResNet-101 (44.55 M, 7.57 G). GC on ResNet-101 is printed worse than "
    "the baseline (25.36 vs 23.38 top-1). The paper: 'replace attention modules at each block'.",
)
