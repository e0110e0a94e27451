"""Table XI: BA²M and other attention modules across ResNet variants on CIFAR-100."""

from suites._rows import CIFAR_KEYS, group
from suites.base import Suite
from suites.recipes import CIFAR_STANDARD

_ = None  # a cell printed as "-"

SUITE = Suite(
    name="table11",
    table="XI",
    title="CIFAR-100 results across ResNet architectures with other attention modules",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=CIFAR_KEYS,
    recipe=CIFAR_STANDARD,
    rows=(
        *group("ResNet-50", "resnet50", CIFAR_KEYS, (
            ("baseline", (23.71, 1.22, 21.49)),
            ("se", (26.24, 1.23, 20.72)),
            ("cbam", (27.44, 1.34, 21.01)),
            ("bam", (24.07, 1.25, 20.00)),
            ("ba2m", (24.21, 1.33, 17.60)),
        )),
        *group("ResNet-101", "resnet101", CIFAR_KEYS, (
            ("baseline", (42.70, 2.44, 20.00)),
            ("se", (45.56, 2.54, 20.89)),
            ("cbam", (49.84, 2.54, 20.30)),
            ("bam", (43.06, 2.46, 19.61)),
            ("ba2m", (42.32, 2.55, 17.88)),
        )),
        *group("PreResNet-110", "preresnet110", CIFAR_KEYS, (
            ("baseline", (1.73, 0.25, 22.22)),
            ("bam", (1.73, 0.25, 21.96)),
            ("se", (1.93, 0.25, 21.85)),
            ("ba2m", (1.86, 0.25, 21.41)),
        )),
        *group("WRN-28 (w=8)", "wrn28_8", CIFAR_KEYS, (
            ("baseline", (23.40, 3.36, 20.40)),
            ("ge", (_, _, 19.74)),
            ("se", (23.58, 3.36, 19.85)),
            ("bam", (23.42, 3.37, 19.06)),
            ("ba2m", (23.44, 3.46, 17.95)),
        )),
        *group("WRN-28 (w=10)", "wrn28_10", CIFAR_KEYS, (
            ("baseline", (36.54, 5.24, 18.89)),
            ("ge", (36.30, 5.20, 20.20)),
            ("se", (36.50, 5.20, 19.00)),
            ("bam", (36.57, 5.25, 18.56)),
            ("aa", (36.20, 5.45, 18.40)),
            ("ba2m", (36.59, 5.39, 17.30)),
        )),
        *group("ResNeXt-29", "resnext29_8x64d", CIFAR_KEYS, (
            ("baseline", (34.52, 4.99, 18.18)),
            ("bam", (34.61, 5.00, 16.71)),
            ("ba2m", (34.78, 5.53, 16.10)),
        )),
    ),
    notes="Values as printed ('The results of compared methods could be find in corresponding "
    "papers'). WRN-28 (w=8) + GE has only an error. Several printed cells are inconsistent "
    "with their baselines: ResNet-101 + BA²M has fewer params than ResNet-101; WRN-28 (w=10) "
    "+ GE, + SE and + AA have fewer params than WRN-28 (w=10).",
)
