"""Table X: BA²M on lightweight and NAS networks on CIFAR-100."""

from suites._rows import pair
from suites.base import Suite
from suites.recipes import CIFAR_STANDARD

SUITE = Suite(
    name="table10",
    table="X",
    title="CIFAR-100 results with lightweight networks and a NAS network",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=("params_m", "flops_g", "err"),
    recipe=CIFAR_STANDARD,
    rows=(
        *pair("DenseNet-100", "densenet100_bc", (0.76, 0.29, 21.95), (0.78, 0.30, 20.63)),
        *pair("ShuffleNetv2", "shufflenetv2", (1.3, 0.05, 26.8), (1.92, 0.06, 25.49)),
        *pair("MobileNetv2", "mobilenetv2", (2.26, 0.07, 30.17), (2.31, 0.07, 26.77)),
        *pair("EfficientNetB0", "efficientnet_b0", (2.80, 0.03, 36.01), (4.18, 0.03, 33.98)),
    ),
    notes="Values as printed ('DensNet-100' in the paper). The ShuffleNetv2 baseline is "
    "printed with fewer digits (1.3 M, 26.8 %) than every other cell. BA²M adds 0.62 M to "
    "ShuffleNetv2 and 1.38 M to EfficientNetB0 but 0.02-0.05 M elsewhere. EfficientNetB0 is "
    "printed with fewer FLOPs (0.03 G) than MobileNetv2 (0.07 G).",
)
