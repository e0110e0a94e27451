"""Params and FLOPs in the paper's convention, counted with fvcore.

The paper's "FLOPs" are multiply-accumulates (MACs) of convolutions, fully connected layers
and attention products; batch norm, pooling and element-wise operations are not counted.
fvcore traces the model once; the convention is one table, :data:`PAPER_OPS`, naming the
operators whose MACs are summed. fvcore's own total (which adds batch norm and pooling, and
gives fused attention nothing) is reported beside it.

fvcore has no handle for ``aten::scaled_dot_product_attention``; :func:`sdpa_flop_jit`
counts its two products (Q K^T and A V) so that fused attention is not free. BA²M's default
global-spatial branch is a custom autograd Function (``models.pooled_attention``), which
fvcore's trace shows as one ``prim::PythonOp.PooledAttention`` node (its inner products are
not traced); :func:`pooled_attention_flop_jit` counts what it computes, Q K^T (L S E) and the
pooled product (c / L) V (S Ev), under the paper-convention name ``pooled_attention``.

Detectors (:func:`count_detector`) follow MMDetection's ``get_flops.py`` / ``forward_dummy``
convention in these MACs, so that the count depends on neither weights nor image content:

- one ``max_size`` x ``min_size`` image (1333x800 COCO, 1000x600 VOC: the detector's resize
  keeps it), through the detector's own transform, which pads it to a multiple of 32
  (1344x800, 1024x608); on that tensor the dense part: backbone (BA²M active, on a batch of
  two as :func:`count` does), FPN, and the RPN head or RetinaNet's two subnets;
- the RoI box head (two fc layers and the predictor) on exactly the RPN's test-time
  proposal cap per image (torchvision's and MMDetection's 1000), and the mask head (four 3x3
  convolutions, the deconvolution, the predictor) on exactly the test-time detection cap
  (100): every proposal kept, every detection masked;
- free, as normalisation and pooling are above: resize and padding, anchors, box decoding,
  NMS and RoIAlign.

Params are every parameter of the detector. The paper prints no params/FLOPs for its
detection tables: these counts are ours, judged against nothing.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# fvcore.nn's import scripts its focal losses with torch.jit.script, which torch 2.14 deprecates
# with one FutureWarning each (five, printed by every command that counts); silenced here, for
# this import only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated",
                            category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

from models.modes import eval_mode

#: Operators whose MACs make the paper's FLOPs (fvcore's operator names).
PAPER_OPS = frozenset(
    {"conv", "linear", "addmm", "matmul", "bmm", "einsum", "mm", "scaled_dot_product_attention",
     "pooled_attention"}
)

#: fvcore's name for the pooled global-spatial Function (``prim::PythonOp.`` + class name).
POOLED_ATTENTION_OP = "prim::PythonOp.PooledAttention"

#: Counted by our own handles: fvcore alone would give these nothing.
OWN_HANDLES = ("scaled_dot_product_attention", "pooled_attention")

#: Operators that cost nothing in the paper's convention (normalisation, pooling, element-wise
#: and shape operations); they are not reported as "uncounted".
FREE_OPS = frozenset(
    {
        "aten::batch_norm", "aten::adaptive_avg_pool2d", "aten::max_pool2d", "aten::softmax",
        "aten::mul", "aten::mul_", "aten::add", "aten::add_", "aten::mean", "aten::max",
        "aten::amax", "aten::relu", "aten::relu_", "aten::sigmoid", "aten::div", "aten::sum",
        "aten::upsample_nearest1d", "aten::stack", "aten::expand_as", "aten::sub", "aten::rsub",
        "aten::exp", "aten::avg_pool2d", "aten::adaptive_avg_pool1d", "aten::tanh",
        "aten::hardtanh_", "aten::hardswish_",
        "aten::silu_", "aten::dropout", "aten::pad", "aten::constant_pad_nd", "aten::repeat",
        "aten::var", "aten::sqrt",
    }
)


def _attention_shapes(inputs: list[Any]) -> tuple[int, int, int, int, int]:
    """(batch and heads, L, E, S, Ev) of an attention op's q (.., L, E), k (.., S, E), v."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= d
    return batch, q[-2], q[-1], k[-2], v[-1]


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """MACs of softmax(Q K^T) V: L*S*E for Q K^T plus L*S*Ev for A V, per batch and head."""
    batch, length, e, s, ev = _attention_shapes(inputs)
    return Counter({"scaled_dot_product_attention": batch * length * s * (e + ev)})


def pooled_attention_flop_jit(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """MACs of mean_L(softmax(Q K^T) V) as computed: L*S*E for Q K^T plus S*Ev for the
    column means of the softmax times V, per batch (no L x S x Ev product is done)."""
    batch, length, e, s, ev = _attention_shapes(inputs)
    return Counter({"pooled_attention": batch * (length * s * e + s * ev)})


@dataclass
class Counts:
    """Counted cost of one model at one input size (batch 1)."""

    params: int
    macs: int
    fvcore_total: int
    by_operator: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)
    #: why fvcore could not count this model's FLOPs ("" when it did; its params still count)
    flops_error: str = ""

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def flops_g(self) -> float:
        return math.nan if self.flops_error else self.macs / 1e9

    @property
    def fvcore_total_g(self) -> float:
        return math.nan if self.flops_error else self.fvcore_total / 1e9


def count_params(model: nn.Module) -> int:
    """Every parameter, trainable or not (BN affine included), as the paper counts."""
    return sum(p.numel() for p in model.parameters())


def count(model: nn.Module, input_size: int, batch: int | None = None, *,
          plugin: bool = False) -> Counts:
    """Params and per-image paper-convention FLOPs of ``model`` on a ``batch`` of 3xSxS images.

    The batch is 1 by default, or 2 where a module declares ``batch_dependent`` (BA²M: a
    batch of one has weight exactly 1 and skips the module, so batch 1 would count none of
    it); MACs are divided by the batch. Batch-aware modules are counted active (their
    training-time cost), whatever their ``eval_mode``. BA²M's batch softmax costs O(N) and
    is not counted.

    A model with a ``plugin`` part (a plugin backbone or method, which fvcore may not trace)
    gets its params and ``flops_error`` when tracing fails; a model of built-in parts that
    fvcore cannot trace raises, as a bug of the zoo or the counter."""
    batch = _batch(model) if batch is None else batch
    model = model.eval()
    x = torch.zeros(batch, 3, input_size, input_size)
    try:
        by_op, uncounted = _trace(model, (x,))
    except Exception as exc:  # noqa: BLE001 - a plugin fvcore cannot trace: params only
        if not plugin:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return Counts(count_params(model), 0, 0,
                      flops_error=f"{type(exc).__name__}: {first}"[:200])
    return _counts(count_params(model), by_op, uncounted, batch)


def count_detector(model: nn.Module) -> Counts:
    """Params and FLOPs of a torchvision detector (``models.detection.build_detector``) on one
    image at its resize limits, in the convention of this module's docstring."""
    model = model.eval()
    by_op: Counter[str] = Counter()
    uncounted: Counter[str] = Counter()
    for part, inputs, images in detector_parts(model):
        ops, missing = _trace(part, inputs)
        by_op.update({op: n // images for op, n in ops.items()})
        uncounted.update(missing)
    return _counts(count_params(model), dict(by_op), dict(uncounted), 1)


def detector_parts(model: nn.Module) -> list[tuple[nn.Module, tuple[Any, ...], int]]:
    """(module, its inputs, images they stand for) of each part of ``model`` that costs MACs:
    the dense part on the padded image (a batch of two where BA²M needs it), then the RoI box
    and mask heads on their test-time caps (none for RetinaNet)."""
    images = _batch(model)
    padded = model.transform([detector_image(model)])[0].tensors.shape[-2:]
    dense_head = model.rpn.head if hasattr(model, "rpn") else model.head
    parts = [(_Dense(model.backbone, dense_head), (torch.zeros(images, 3, *padded),), images)]
    if hasattr(model, "roi_heads"):
        heads, channels = model.roi_heads, model.backbone.out_channels
        parts.append((nn.Sequential(heads.box_head, heads.box_predictor),
                      (_rois(model.rpn.post_nms_top_n(), channels, heads.box_roi_pool),), 1))
        if heads.has_mask():
            parts.append((nn.Sequential(heads.mask_head, heads.mask_predictor),
                          (_rois(heads.detections_per_img, channels, heads.mask_roi_pool),), 1))
    return parts


def detector_image(model: nn.Module) -> torch.Tensor:
    """A blank image at ``model``'s test-time resize limits (short side ``min_size``, long
    side ``max_size``), which its resize keeps."""
    resize = model.transform
    return torch.zeros(3, resize.min_size[-1], resize.max_size)


class _Dense(nn.Module):
    """A detector's backbone and FPN, then its dense head on every level."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> Any:
        out = self.head(list(self.backbone(x).values()))
        return tuple(out.values()) if isinstance(out, dict) else out


def _rois(n: int, channels: int, pool: nn.Module) -> torch.Tensor:
    """What ``pool`` (a ``MultiScaleRoIAlign``) gives the head for ``n`` RoIs."""
    return torch.zeros(n, channels, *pool.output_size)


def _batch(model: nn.Module) -> int:
    """2 where a module declares ``batch_dependent`` (see :func:`count`), else 1."""
    return 2 if any(getattr(m, "batch_dependent", False) for m in model.modules()) else 1


def _counts(params: int, by_op: dict[str, int], uncounted: dict[str, int],
            batch: int) -> Counts:
    """Per-image counts from fvcore's MACs by operator over ``batch`` images."""
    macs = sum(n for op, n in by_op.items() if op in PAPER_OPS)
    own = sum(by_op.get(op, 0) for op in OWN_HANDLES)
    total = sum(by_op.values()) - own  # what fvcore alone would say
    return Counts(params, macs // batch, total // batch, by_op, uncounted)


def _trace(model: nn.Module,
           inputs: Sequence[Any]) -> tuple[dict[str, int], dict[str, int]]:
    """fvcore's MACs by operator of ``model(*inputs)``, and the operators it could not count
    (free ones aside). Batch-aware modules run active."""
    fvcore_log = logging.getLogger("fvcore.nn.jit_analysis")
    level = fvcore_log.level
    fvcore_log.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings(), eval_mode(model, "batch"):
            warnings.simplefilter("ignore")
            fa = FlopCountAnalysis(model, tuple(inputs))
            fa.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
            fa.set_op_handle(POOLED_ATTENTION_OP, pooled_attention_flop_jit)
            fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            by_op = dict(fa.by_operator())
            uncounted = {
                op: n for op, n in fa.unsupported_ops().items() if op not in FREE_OPS
            }
    finally:
        fvcore_log.setLevel(level)
    return by_op, uncounted
