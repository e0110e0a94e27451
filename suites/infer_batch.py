"""§III-D: BA²M's top-1 error at test batch sizes 1 to 256 (ResNet-50, ImageNet-1K)."""

from suites.base import FigureKind, FigureSpec, Row, Suite
from suites.recipes import IMAGENET_BAM

#: The test batch sizes of §III-D.
TEST_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _test_batch(b: int) -> Row:
    """One trained model evaluated at test batch ``b`` with BA²M active ("we activate the
    BA²M"): rows differ only in ``eval``."""
    return Row("ResNet-50", "resnet50", "ba2m", setting=f"test_batch={b}",
               eval={"batch_size": b, "eval_mode": "batch"}, paper={"top1_err": 21.63})


SUITE = Suite(
    name="infer-batch",
    table="III-D",
    title="Top-1 error of ResNet-50 + BA²M at test batch sizes 1-256 (ImageNet-1K)",
    dataset="imagenet",
    form="imagenet",
    task="classification",
    metrics=("top1_err",),
    recipe=IMAGENET_BAM,
    rows=tuple(_test_batch(b) for b in TEST_BATCH_SIZES),
    figures=(FigureSpec(kind=FigureKind.TEST_BATCH,
                        caption="top-1 error vs test batch size",
                        title="top-1 error vs test batch size (ResNet-50 + BA²M)"),),
    audit=True,
    notes="From the text of §III-D, not a table: 'we activate the BA²M in the ResNet50 on the "
    "ImageNet. The size of test batch is {1,2,4,8,16,32,64,128,256}. All the results are "
    "21.63%.' (= Table V's ResNet-50 + BA²M top-1). The same paragraph then says 'we "
    "deactivate BA²M in the inference phase because we usually infer one image at a time', "
    "which contradicts the experiment with BA²M activated at test time. One training job per "
    "seed; the rows differ only in the evaluation batch size.",
)
