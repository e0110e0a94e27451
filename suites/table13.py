"""Table XIII: which blocks of ResNet-50 get a BA²M (CIFAR-100)."""

from suites.base import FigureKind, FigureSpec, Row, Suite
from suites.recipes import CIFAR_STANDARD


def _blocks(stages: str, err: float, std: float) -> Row:
    """``stages``: the stages after which BA²M sits, joined by "+", e.g. "1+3"."""
    return Row("ResNet-50", "resnet50", "ba2m", setting=f"blocks={stages}",
               model={"stages": tuple(int(s) for s in stages.split("+"))},
               paper={"err": err, "std": std}, inferred=True)


SUITE = Suite(
    name="table13",
    table="XIII",
    title="Combination of BA²M within a network (ResNet-50, CIFAR-100)",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=("err", "std"),
    recipe=CIFAR_STANDARD,
    rows=(
        Row("ResNet-50", "resnet50", "baseline", setting="blocks=none",
            paper={"err": 21.49, "std": 0.13}),
        _blocks("1", 17.96, 0.14),
        _blocks("2", 17.87, 0.12),
        _blocks("3", 17.94, 0.24),
        _blocks("4", 17.88, 0.22),
        _blocks("1+2", 18.05, 0.36),
        _blocks("1+3", 18.33, 0.30),
        _blocks("1+4", 17.99, 0.36),
        _blocks("2+3", 17.91, 0.17),
        _blocks("2+4", 17.78, 0.21),
        _blocks("3+4", 17.95, 0.32),
        _blocks("1+2+3", 17.70, 0.11),
        _blocks("1+2+4", 18.02, 0.18),
        _blocks("1+3+4", 17.90, 0.17),
        _blocks("2+3+4", 17.93, 0.21),
        _blocks("1+2+3+4", 17.60, 0.15),
    ),
    statistic="mean",
    figures=(FigureSpec(kind=FigureKind.BARS, caption="blocks with BA²M",
                        title="blocks with BA²M (ResNet-50, CIFAR-100)",
                        xlabel="blocks (inferred order)"),),
    notes="Mean error and std over five runs. The Block1-4 check-mark rows were lost in the "
    "paper's text; only the group headers (No / One / Two / Three / Four BA²Ms) and the two "
    "value rows survive. The BA²M columns' identities are inferred in lexicographic order "
    "within each group. It agrees with the text: among single blocks, block 2 (17.87) is "
    "best and block 1 (17.96) worst. The 'No BA²M' column is plain ResNet-50.",
)
