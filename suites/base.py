"""What a suite declares: one paper table or figure, its rows, recipe and the paper's values.

Data flows one way: a :class:`Suite` declaration -> jobs (``harness.plan.jobs``) -> runner ->
database -> report. A suite never runs anything; it only says what to run and what the paper
printed. Paper values are transcribed exactly as printed; a cell printed as "-" is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

#: Metric names used for paper values and results.
METRICS = (
    "params_m", "flops_g", "err", "top1_err", "top5_err", "std", "recall", "map",
    "ap_bb", "ap50_bb", "ap75_bb", "aps_bb", "apm_bb", "apl_bb",
    "ap_mask", "ap50_mask", "ap75_mask", "aps_mask", "apm_mask", "apl_mask",
)

TASKS = ("classification", "detection")

#: Methods of the detection tables that are no attention module: the row's ``model`` says what
#: they change in the detector (its loss or RoI sampler); the backbone stays plain.
DETECTOR_METHODS = ("focal-loss", "ohem", "softmax-loss")


@dataclass(frozen=True)
class Recipe:
    """A training recipe; ``sources`` says where each number comes from."""

    name: str
    epochs: int
    batch_size: int
    lr: float  # at ``batch_size``
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]  # epochs at which lr is multiplied by ``gamma``
    gamma: float
    augment: str  # "crop-flip" (CIFAR: 4-px padded crop + flip) or "rrc-flip" (ImageNet)
    nesterov: bool = False
    eval_resize: int | None = None  # ImageNet: resize shorter side, then centre crop
    eval_crop: int | None = None
    sources: dict[str, str] = field(default_factory=dict)
    gpus: int = 1  # data-parallel processes of one job; batch_size is their global batch

    def scaled_lr(self, batch_size: int) -> float:
        """Linear scaling rule: lr grows with the batch size."""
        return self.lr * batch_size / self.batch_size


@dataclass(frozen=True, kw_only=True)
class DetectionRecipe:
    """A detector's training recipe (MMDetection v1 style); ``sources`` says where each number
    comes from. Iteration-based warm-up: the lr rises linearly from ``warmup_ratio * lr`` to
    ``lr`` over ``warmup_iters`` steps; then it is multiplied by ``gamma`` at each of
    ``milestones`` (epochs). Images are resized to fit ``scale`` (long side, short side)
    keeping their aspect ratio, and flipped with probability ``flip``."""

    name: str
    epochs: int
    batch_size: int  # images per step, all GPUs together (gpus x images_per_gpu)
    lr: float  # at ``batch_size``
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]
    gamma: float
    warmup_iters: int
    warmup_ratio: float
    grad_clip: float | None  # max L2 norm of all gradients; None: no clipping
    scale: tuple[int, int]  # (long, short) side limits
    flip: float
    gpus: int
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def images_per_gpu(self) -> int:
        return self.batch_size // self.gpus

    def scaled_lr(self, batch_size: int) -> float:
        """Linear scaling rule: lr grows with the batch size."""
        return self.lr * batch_size / self.batch_size

    def lr_at(self, step: int, epoch: int, batch_size: int | None = None) -> float:
        """The learning rate at global step ``step`` (0-based) of epoch ``epoch`` (0-based)."""
        lr = self.scaled_lr(batch_size or self.batch_size)
        lr *= self.gamma ** sum(epoch >= m for m in self.milestones)
        if step < self.warmup_iters:
            lr *= self.warmup_ratio + (1 - self.warmup_ratio) * step / self.warmup_iters
        return lr


@dataclass(frozen=True)
class Row:
    """One row of a paper table: a backbone, a method and a setting.

    Attributes:
        backbone: the paper's label ("ResNet-50").
        arch: the zoo's architecture name ("resnet50"); None where the zoo has no backbone.
        method: "baseline", an attention method ("ba2m", "se", ...), a "+" combination
            ("se+ba2m"), or a non-attention method of the detection tables
            (:data:`DETECTOR_METHODS`).
        setting: what distinguishes rows with the same backbone and method ("R=16",
            "blocks=1+3", "N=64", "inside", "branches=ca+lsa", "test_batch=8"); "" if none.
        model: keyword arguments for ``models.build_model`` beyond arch/form/attention
            (e.g. {"reduction": 16}, {"stages": (1, 3)}, {"position": "inside"}); in a
            detection table, the detector and its options ({"detector": "faster_rcnn",
            "sampler": "ohem"}).
        train: recipe overrides for this row (e.g. {"batch_size": 64}).
        eval: evaluation variant (e.g. {"batch_size": 8}); rows that differ only here share
            one training job.
        paper: the paper's printed values, metric name -> number.
        inferred: the row's identity is inferred (lost check-mark columns of IX and XIII).
        available: None if the harness can run it, else what is missing.
        added: a row the user added (``run --add-method``, :mod:`suites.added`): not the
            paper's, so no paper value; reports mark it as the user's.
    """

    backbone: str
    arch: str | None
    method: str
    setting: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, float] = field(default_factory=dict)
    inferred: bool = False
    available: str | None = None
    note: str = ""
    added: bool = False

    @property
    def attention(self) -> str | None:
        """The attention method(s) the row's backbone carries (None: a plain backbone)."""
        return None if self.method in ("baseline", *DETECTOR_METHODS) else self.method

    @property
    def label(self) -> str:
        parts = [self.backbone, self.method] + ([self.setting] if self.setting else [])
        return " / ".join(parts)


class FigureKind(StrEnum):
    """The suite-specific figures a report can draw (``harness/report/figures.py``); the
    value is the figure's file-name suffix (``table8-reduction.png``)."""

    BATCH_SIZE = "batch-size"  # error vs the training batch size N, rows "N=..."
    REDUCTION = "reduction"  # error and params vs the reduction ratio, rows "R=..."
    BARS = "bars"  # paper vs ours, mean ± std bars, one per row
    TEST_BATCH = "test-batch"  # error vs the test batch size, with the stored audit


@dataclass(frozen=True, kw_only=True)
class PaperPoint:
    """A value the paper prints elsewhere, drawn as a reference on a figure."""

    x: float
    value: float
    label: str


@dataclass(frozen=True, kw_only=True)
class FigureSpec:
    """A figure a suite asks its report to draw.

    ``caption`` and ``title`` follow the table's short name ("Table VIII: ..."); ``xlabel``
    labels the bars of :attr:`FigureKind.BARS`; ``reference`` is drawn on
    :attr:`FigureKind.BATCH_SIZE`.
    """

    kind: FigureKind
    caption: str
    title: str
    xlabel: str = ""
    reference: PaperPoint | None = None


@dataclass(frozen=True)
class Suite:
    """One paper table or figure.

    ``statistic`` is the headline statistic over seeds: "median" (the paper's median of five
    runs) or "mean" (tables printed as mean error and std). ``figures`` are the figures drawn
    for it beyond those every table with results gets (paper vs ours scatter, training
    curves). ``audit``: the report asks for the test-batch-size audit (``ba2m-bench audit``)
    when none is stored.
    """

    name: str  # CLI name: "table5", "fig5", "infer-batch"
    table: str  # the paper's numbering: "V", "Fig. 5", "III-D"
    title: str
    dataset: str  # "cifar100", "imagenet", "coco", "voc0712"
    form: str  # model form: "cifar" or "imagenet"
    task: str  # "classification" or "detection"
    metrics: tuple[str, ...]  # the paper's columns, as metric names
    rows: tuple[Row, ...]
    recipe: Recipe | DetectionRecipe | None  # a DetectionRecipe for task "detection"
    seeds: int = 5
    notes: str = ""
    statistic: Literal["median", "mean"] = "median"
    figures: tuple[FigureSpec, ...] = ()
    audit: bool = False
