"""Table VI: BA²M combined with SE, CBAM and BAM, ResNet-50 on CIFAR-100."""

from suites._rows import CIFAR_KEYS, group
from suites.base import Suite
from suites.recipes import CIFAR_STANDARD

SUITE = Suite(
    name="table6",
    table="VI",
    title="CIFAR-100 results of BA²M with other attention modules (ResNet-50)",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=CIFAR_KEYS,
    recipe=CIFAR_STANDARD,
    rows=group("ResNet-50", "resnet50", CIFAR_KEYS, (
        ("baseline", (23.71, 1.22, 21.49)),
        ("se", (26.24, 1.23, 20.72)),
        ("cbam", (27.44, 1.34, 21.01)),
        ("bam", (24.07, 1.25, 20.00)),
        ("ba2m", (24.21, 1.33, 17.60)),
        ("se+ba2m", (26.74, 1.34, 17.52)),
        ("cbam+ba2m", (27.94, 1.45, 17.43)),
        ("bam+ba2m", (24.57, 1.36, 17.00)),
    )),
    notes="Values as printed; the first five rows repeat Table XI. Each '+X+BA²M' row adds "
    "exactly the BA²M cost of the ResNet-50 row (+0.50 M, +0.11 G) to the X row.",
)
