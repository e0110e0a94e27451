"""Table IX: design choices of BA²M, which attention branches (ResNet-50, CIFAR-100)."""

from suites.base import FigureKind, FigureSpec, Row, Suite
from suites.recipes import CIFAR_STANDARD


def _branches(names: str, err: float, std: float) -> Row:
    """``names``: the branches joined by "+", e.g. "ca+lsa"."""
    return Row("ResNet-50", "resnet50", "ba2m", setting=f"branches={names}",
               model={"branches": tuple(names.split("+"))},
               paper={"err": err, "std": std}, inferred=True)


SUITE = Suite(
    name="table9",
    table="IX",
    title="The results of different design choices of BA²M (CA / LSA / GSA branches)",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=("err", "std"),
    recipe=CIFAR_STANDARD,
    rows=(
        _branches("ca", 18.06, 0.20),
        _branches("lsa", 17.86, 0.30),
        _branches("gsa", 18.18, 0.29),
        _branches("ca+lsa", 17.71, 0.30),
        _branches("ca+gsa", 18.00, 0.23),
        _branches("lsa+gsa", 17.78, 0.28),
        _branches("ca+lsa+gsa", 17.60, 0.15),
    ),
    statistic="mean",
    figures=(FigureSpec(kind=FigureKind.BARS, caption="branch ablation",
                        title="branch ablation (ResNet-50, CIFAR-100)",
                        xlabel="branches (inferred order)"),),
    notes="The CA / LSA / GSA check-mark columns were lost in the paper's text; the row order "
    "(CA, LSA, GSA, CA+LSA, CA+GSA, LSA+GSA, all three) is inferred. It agrees with the text: "
    "LSA alone is 17.86, LSA+GSA is 17.78, and the last row (17.60) is the full BA²M.",
)
