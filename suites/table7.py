"""Table VII: position of BA²M, inside vs between residual blocks (ResNet-50, CIFAR-100)."""

from suites.base import FigureKind, FigureSpec, Row, Suite
from suites.recipes import CIFAR_STANDARD


def _position(where: str, err: float, std: float) -> Row:
    return Row("ResNet-50", "resnet50", "ba2m", setting=where, model={"position": where},
               paper={"err": err, "std": std})


SUITE = Suite(
    name="table7",
    table="VII",
    title="The results of the position of BA²M",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=("err", "std"),
    recipe=CIFAR_STANDARD,
    rows=(
        _position("inside", 17.71, 0.40),
        _position("between", 17.60, 0.15),
    ),
    statistic="mean",
    figures=(FigureSpec(kind=FigureKind.BARS, caption="position of BA²M",
                        title="position of BA²M (ResNet-50, CIFAR-100)", xlabel="position"),),
    notes="Mean error and std over five runs. 'inside' is Fig. 4(c), 'between' Fig. 4(d). "
    "The inside row (17.71, 0.40) is identical to Table VIII's R=2 row; the between row "
    "equals the default BA²M (R=32, all four blocks).",
)
