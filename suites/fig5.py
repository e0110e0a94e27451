"""Figure 5: test error vs the batch size N (ResNet-50 + BA²M, CIFAR-100)."""

from suites.base import Row, Suite
from suites.recipes import CIFAR_STANDARD

#: The batch sizes of §IV-D4.
BATCH_SIZES = (4, 8, 16, 32, 64, 128, 256)


def _batch(n: int) -> Row:
    """Train and test at batch ``n``; lr is 0.1 at N=128, scaled linearly (§IV-D4)."""
    return Row("ResNet-50", "resnet50", "ba2m", setting=f"N={n}",
               train={"batch_size": n, "lr": 0.1 * n / 128}, eval={"batch_size": n})


SUITE = Suite(
    name="fig5",
    table="Fig. 5",
    title="Test error vs the size of batch N (ResNet-50 + BA²M, CIFAR-100)",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=("err",),
    recipe=CIFAR_STANDARD,
    rows=tuple(_batch(n) for n in BATCH_SIZES),
    notes="A figure: the paper prints no numbers, so no paper values are declared. The text "
    "says error improves continuously with larger N, each setting is the mean of five runs, "
    "'all models are trained on one GPU and learning rate changed linearly', and N=256 is "
    "used elsewhere. The N=256 point should match Table I's 17.60.",
)
