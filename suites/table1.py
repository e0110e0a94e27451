"""Table I: BA²M across ResNet variants on CIFAR-100 (repeated in Table XI)."""

from suites._rows import pair
from suites.base import Suite
from suites.recipes import CIFAR_STANDARD

SUITE = Suite(
    name="table1",
    table="I",
    title="Image classification results on CIFAR-100 across ResNet architectures",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=("params_m", "flops_g", "err"),
    recipe=CIFAR_STANDARD,
    rows=(
        *pair("ResNet-50", "resnet50", (23.71, 1.22, 21.49), (24.21, 1.33, 17.60)),
        *pair("ResNet-101", "resnet101", (42.70, 2.44, 20.00), (42.32, 2.55, 17.88)),
        *pair("PreResNet-110", "preresnet110", (1.73, 0.25, 22.22), (1.86, 0.25, 21.41)),
        *pair("WRN-28 (w=8)", "wrn28_8", (23.40, 3.36, 20.40), (23.44, 3.46, 17.95)),
        *pair("WRN-28 (w=10)", "wrn28_10", (36.54, 5.24, 18.89), (36.59, 5.39, 17.30)),
        *pair("ResNeXt-29", "resnext29_8x64d", (34.52, 4.99, 18.18), (34.78, 5.53, 16.10)),
    ),
)
