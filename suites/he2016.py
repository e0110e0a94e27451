"""A published anchor: He et al. 2016 (CVPR), Table 6, CIFAR-10 ResNets with option-A shortcuts.

Not a table of the BA²M paper: a result nobody here wrote, which the harness's training must
reproduce before its BA²M numbers mean anything. The networks are He et al.'s CIFAR ResNets
as they built them (``resnet20a`` ... ``resnet110a``: identity shortcuts, zero-padded channels
where the width grows; ``models/backbones.py``), trained with their recipe
(``suites/recipes.py``: ``HE2016_CIFAR10``). Two BA²M rows ask the BA²M paper's question on a
data set anyone can get; He et al. print nothing for them. See docs/he2016.md.
"""

from suites.base import Row, Suite
from suites.recipes import HE2016_CIFAR10

#: He et al. 2016, Table 6: depth -> (blocks per stage n, params (M), error (%)) as printed.
PRINTED = {
    20: (3, 0.27, 8.75),
    32: (5, 0.46, 7.51),
    44: (7, 0.66, 7.17),
    56: (9, 0.85, 6.97),
    110: (18, 1.7, 6.43),
}

#: Depths that also get a + BA²M row (no printed value).
BA2M_DEPTHS = (20, 56)


def _baseline(depth: int) -> Row:
    _, params, err = PRINTED[depth]
    return Row(f"ResNet-{depth}", f"resnet{depth}a", "baseline",
               paper={"params_m": params, "err": err})


def _ba2m(depth: int) -> Row:
    """BA²M after each of the three stages (the registry's default placement on a three-stage
    network, Eq. 15), every other option the paper-faithful default."""
    return Row(f"ResNet-{depth}", f"resnet{depth}a", "ba2m")


SUITE = Suite(
    name="he2016",
    table="He et al. 2016",
    title="CIFAR-10 ResNets of He et al. 2016 (their Table 6), a published anchor, with BA²M rows",
    dataset="cifar10",
    form="cifar",
    task="classification",
    metrics=("params_m", "err"),
    recipe=HE2016_CIFAR10,
    rows=tuple(r for d in PRINTED
               for r in ((_baseline(d), _ba2m(d)) if d in BA2M_DEPTHS else (_baseline(d),))),
    notes="A validation suite, not a table of the BA²M paper: He et al. 2016 (CVPR), Table 6, "
    "CIFAR-10 test error of ResNet-20/32/44/56/110 with option-A (parameter-free, zero-padded) "
    "shortcuts, trained 164 epochs at batch 128 (lr 0.1, x0.1 at epochs 82 and 123, weight "
    "decay 1e-4, momentum 0.9, 4-pixel pad + crop + flip). He et al. print one run per depth "
    "except ResNet-110, whose 6.43 is the best of 5 runs (mean 6.61 ± 0.16); they warm "
    "ResNet-110 up at lr 0.01 for about 400 iterations, which this harness does not do. "
    "The + BA²M rows (BA²M after each of the three stages) have no printed value: the report "
    "shows '-' for the paper, our error, status 'no paper value', and their gain over the "
    "same depth's baseline with a 95 % interval. Data: --dataset cifar10 (torchvision's "
    "files) is the published data. The shared copy (--dataset image-folder, "
    "../shared/data; docs/he2016.md says how to unzip it into train/ and test/) stores every "
    "image as JPEG (quality about 75): compression costs some accuracy, so expect our error a "
    "little above He et al.'s on it; such runs are marked not comparable (another dataset), "
    "and the reproduced / differs rule judges only runs on the published data.",
)
