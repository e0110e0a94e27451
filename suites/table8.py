"""Table VIII: the reduction ratio R of BA²M (ResNet-50, CIFAR-100)."""

from suites.base import FigureKind, FigureSpec, Row, Suite
from suites.recipes import CIFAR_STANDARD

_KEYS = ("params_m", "flops_g", "err", "std")


def _reduction(r: int, *cells: float) -> Row:
    return Row("ResNet-50", "resnet50", "ba2m", setting=f"R={r}", model={"reduction": r},
               paper=dict(zip(_KEYS, cells, strict=True)))


SUITE = Suite(
    name="table8",
    table="VIII",
    title="Results with different reduction R in {2, 4, 8, 16, 32} (ResNet-50, CIFAR-100)",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=_KEYS,
    recipe=CIFAR_STANDARD,
    rows=(
        _reduction(2, 70.80, 2.86, 17.71, 0.40),
        _reduction(4, 40.65, 1.78, 18.04, 0.19),
        _reduction(8, 30.12, 1.47, 18.13, 0.10),
        _reduction(16, 25.99, 1.37, 18.01, 0.13),
        _reduction(32, 24.21, 1.33, 17.60, 0.15),
    ),
    statistic="mean",
    figures=(FigureSpec(kind=FigureKind.REDUCTION, caption="error and params vs R",
                        title="error and params vs reduction R"),),
    notes="Values as printed; the columns are labelled Params(MB) and Flops(GB) but are M "
    "and G (R=32 matches Table I's 24.21 M / 1.33 G). Mean of five runs. 'The minimum number "
    "of channels in the ablation experiment is 32.' The R=2 error/std (17.71, 0.40) equal "
    "Table VII's 'inside' row.",
)
