"""Figure 5: test error vs the batch size N (ResNet-50 + BA²M, CIFAR-100)."""

from suites.base import FigureKind, FigureSpec, PaperPoint, Row, Suite
from suites.recipes import CIFAR_STANDARD
from suites.table1 import SUITE as TABLE1

#: The batch sizes of §IV-D4.
BATCH_SIZES = (4, 8, 16, 32, 64, 128, 256)


def _batch(n: int) -> Row:
    """Train and test at batch ``n``; lr is 0.1 at N=128, scaled linearly (§IV-D4)."""
    return Row("ResNet-50", "resnet50", "ba2m", setting=f"N={n}",
               train={"batch_size": n, "lr": 0.1 * n / 128}, eval={"batch_size": n})


def _table1_reference() -> PaperPoint | None:
    """Table I's ResNet-50 + BA²M error, trained at N=256: the figure's paper reference."""
    row = next((r for r in TABLE1.rows if r.backbone == "ResNet-50" and r.method == "ba2m"),
               None)
    if row is None or "err" not in row.paper:
        return None
    err = row.paper["err"]
    return PaperPoint(x=256.0, value=err, label=f"paper: Table I, N=256 ({err:.2f})")


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
    statistic="mean",
    figures=(FigureSpec(kind=FigureKind.BATCH_SIZE, caption="test error vs batch size N",
                        title="test error vs batch size N (ResNet-50 + BA²M, CIFAR-100)",
                        reference=_table1_reference()),),
    notes="A figure: the paper prints no numbers, so no paper values are declared. The text "
    "says error improves continuously with larger N, each setting is the mean of five runs, "
    "'all models are trained on one GPU and learning rate changed linearly', and N=256 is "
    "used elsewhere. The N=256 point should match Table I's 17.60.",
)
