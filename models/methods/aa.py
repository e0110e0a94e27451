"""AA: attention augmented convolution, in place of the residual blocks' 3x3 convolutions.

Bello, Zoph, Vaswani, Shlens and Le, "Attention Augmented Convolutional Networks", ICCV 2019,
https://arxiv.org/abs/1904.09925.

    AAConv(X) = Concat[Conv(X), MHA(X)]                                      Eq. 5
    O_h = softmax((Q_h K_h^T + S_H^rel + S_W^rel) / sqrt(d_k^h)) V_h           Eq. 1, 4
    MHA(X) = Concat[O_1, ..., O_Nh] W^O                                       Eq. 2

The convolution gives F_out - d_v channels, multi-head self-attention over all H*W positions gives
d_v; d_k = kappa F_out and d_v = upsilon F_out. Q, K, V come from one 1x1 convolution
(F_in -> 2 d_k + d_v), W^O is a 1x1 d_v -> d_v. S^rel are 2D relative logits: a learned vector
per relative column offset and per relative row offset (2W-1 and 2H-1 vectors of d_k^h, shared by
the heads), so their number depends on the feature-map size.

The paper's settings: Nh = 8, kappa = 2 upsilon = 0.2, at least 20 key dimensions per head
(§4.1 CIFAR-100 WRN-28-10, §4.2 ImageNet ResNets); WRN: the first convolution of every residual
block; ResNets: the 3x3 convolutions of the last three stages (28x28 maps and below). Departures
and the FLOP count are in ``docs/methods-replace.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck

from models.backbones import PreActBlock, StagedNet
from models.probe import output_shapes, paper_input_size
from models.registry import ModelConfigError, register_attention

StrideOn = Literal["layer", "block"]

#: The 3x3 convolution AA augments in each kind of residual block.
AUGMENTED_CONV: dict[type[nn.Module], str] = {
    Bottleneck: "conv2",  # the bottleneck's 3x3 (§4.2)
    PreActBlock: "conv1",  # "the first convolution of all residual blocks" (§4.1, WRN)
}


def aa_depths(out_channels: int, key_ratio: float, value_ratio: float, heads: int,
              min_key_dims: int) -> tuple[int, int]:
    """(d_k, d_v): kappa F_out and upsilon F_out, rounded to a multiple of Nh, with at least
    ``min_key_dims`` key dimensions and one value dimension per head."""
    dk = heads * max(round(key_ratio * out_channels / heads), min_key_dims, 1)
    dv = heads * max(round(value_ratio * out_channels / heads), 1)
    if dv >= out_channels:
        raise ModelConfigError(
            f"AA needs d_v < F_out, got d_v={dv} for F_out={out_channels}; lower value_ratio"
        )
    return dk, dv


class AAConv(nn.Module):
    """Attention augmented 3x3 convolution: (N, F_in, H, W) -> (N, F_out, H/s, W/s).

    Args:
        in_channels, out_channels: F_in and F_out.
        stride: stride of the convolution; the attention runs on the input average-pooled by the
            same stride (so both halves have the output's size).
        size: (H, W) of the largest map the relative embeddings cover (attention resolution).
        key_dims, value_dims, heads: d_k, d_v and Nh.
        relative: add the 2D relative logits S_H^rel, S_W^rel (the paper's AA).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        size: tuple[int, int],
        key_dims: int,
        value_dims: int,
        heads: int = 8,
        relative: bool = True,
    ) -> None:
        super().__init__()
        if key_dims % heads or value_dims % heads:
            raise ModelConfigError(f"d_k={key_dims} and d_v={value_dims} must divide by Nh={heads}")
        self.stride, self.heads, self.size = stride, heads, tuple(size)
        self.dk, self.dv, self.dkh = key_dims, value_dims, key_dims // heads
        self.conv = nn.Conv2d(in_channels, out_channels - value_dims, 3, stride, 1, bias=False)
        self.qkv = nn.Conv2d(in_channels, 2 * key_dims + value_dims, 1, bias=False)
        self.out = nn.Conv2d(value_dims, value_dims, 1, bias=False)
        dkh = key_dims // heads
        if relative:
            h, w = self.size
            self.rel_h = nn.Parameter(torch.randn(2 * h - 1, dkh) * dkh**-0.5)
            self.rel_w = nn.Parameter(torch.randn(2 * w - 1, dkh) * dkh**-0.5)
        else:
            self.register_parameter("rel_h", None)
            self.register_parameter("rel_w", None)
        for m in (self.conv, self.qkv, self.out):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv(x)
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride, ceil_mode=True)
        return torch.cat([conv, self.attention(x)], 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """MHA(X) with relative logits, (N, F_in, H, W) -> (N, d_v, H, W)."""
        n, _, h, w = x.shape
        q, k, v = self.qkv(x).split((self.dk, self.dk, self.dv), 1)
        q, k, v = (t.reshape(n, self.heads, -1, h * w).transpose(2, 3) for t in (q, k, v))
        bias = self.relative_logits(q, h, w) if self.rel_h is not None else None
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # scale 1/sqrt(d_k^h)
        return self.out(o.transpose(2, 3).reshape(n, self.dv, h, w))

    def relative_logits(self, q: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """S_H^rel + S_W^rel of Eq. 4, scaled as the content logits: (N, Nh, HW, HW).

        Position (x, y) attends to (u, v) with logit q_xy . (r^H_{u-x} + r^W_{v-y}); the two
        products cost HW * H * d_k and HW * W * d_k MACs (the paper's memory-efficient form).
        They are matmuls, which fvcore counts exactly (its einsum count is rounded)."""
        if h > self.size[0] or w > self.size[1]:
            raise ModelConfigError(
                f"AA relative embeddings cover maps up to {self.size}, got {(h, w)}"
            )
        n, nh, dkh = q.shape[0], self.heads, self.dkh
        q = q.reshape(n, nh, h, w, dkh) * dkh**-0.5
        r_h = _offsets(self.rel_h, self.size[0], h)  # (x, u, d): r^H_{u-x}
        r_w = _offsets(self.rel_w, self.size[1], w)  # (y, v, d): r^W_{v-y}
        # batch over x (rows): (x, n*nh*w, d) @ (x, d, u) -> logits_h[b, n, x, y, u]
        logits_h = torch.matmul(q.permute(2, 0, 1, 3, 4).reshape(h, -1, dkh), r_h.transpose(1, 2))
        logits_h = logits_h.view(h, n, nh, w, h).permute(1, 2, 0, 3, 4)
        # batch over y (columns): (y, n*nh*h, d) @ (y, d, v) -> logits_w[b, n, x, y, v]
        logits_w = torch.matmul(q.permute(3, 0, 1, 2, 4).reshape(w, -1, dkh), r_w.transpose(1, 2))
        logits_w = logits_w.view(w, n, nh, h, w).permute(1, 2, 3, 0, 4)
        logits = logits_h[..., :, None] + logits_w[..., None, :]  # b n x y u v
        return logits.reshape(n, nh, h * w, h * w)


def _offsets(table: torch.Tensor, built: int, size: int) -> torch.Tensor:
    """Embeddings indexed by position pairs: out[i, j] = table[(j - i) + built - 1]."""
    idx = torch.arange(size, device=table.device)
    return table[idx[None, :] - idx[:, None] + built - 1]


def apply_aa(
    model: StagedNet,
    stages: Sequence[int],
    key_ratio: float = 0.2,
    value_ratio: float = 0.1,
    heads: int = 8,
    min_key_dims: int = 20,
    relative: bool = True,
    max_size: int | None = 32,
    input_size: int | None = None,
    stride_on: StrideOn = "layer",
) -> None:
    """Augment the 3x3 convolution (``AUGMENTED_CONV``) of every block in ``stages`` whose
    attention map is at most ``max_size`` wide."""
    if stride_on not in ("layer", "block"):
        raise ModelConfigError(f"unknown AA stride_on {stride_on!r}; choose layer or block")
    targets = []
    for i in stages:
        for block in model.stages[i - 1]:
            name = AUGMENTED_CONV.get(type(block))
            if name is None:
                raise ModelConfigError(
                    f"AA does not know which convolution of {type(block).__name__} to augment"
                )
            targets.append((block, name))
    size = input_size or paper_input_size(model)
    # the 3x3's output size (the attention's map) does not depend on where the stride sits
    shapes = output_shapes(model, [getattr(b, n) for b, n in targets], size)
    sizes = [(s[-2], s[-1]) for s in shapes]
    augmented = 0
    for (block, name), (h, w) in zip(targets, sizes):
        if max_size is not None and max(h, w) > max_size:
            continue
        conv: nn.Conv2d = getattr(block, name)
        stride = conv.stride[0]
        if stride_on == "layer" and isinstance(block, Bottleneck) and block.conv1.stride[0] > 1:
            stride, block.conv1.stride = block.conv1.stride[0], (1, 1)
        dk, dv = aa_depths(conv.out_channels, key_ratio, value_ratio, heads, min_key_dims)
        setattr(block, name, AAConv(conv.in_channels, conv.out_channels, stride, (h, w),
                                    dk, dv, heads, relative))
        augmented += 1
    if not augmented:
        raise ModelConfigError(
            f"AA augmented nothing: every chosen stage's maps are wider than max_size={max_size}"
        )


@register_attention("aa", position="replace", transform=apply_aa)
def aa(
    channels: int,
    key_ratio: float = 0.2,
    value_ratio: float = 0.1,
    heads: int = 8,
    min_key_dims: int = 20,
    relative: bool = True,
    max_size: int | None = 32,
    input_size: int | None = None,
    stride_on: StrideOn = "layer",
) -> AAConv:
    """A stride-1 AA convolution of ``channels`` for maps up to ``max_size`` (default 32).

    Args:
        channels: F_in = F_out.
        key_ratio: kappa = d_k / F_out (paper 0.2).
        value_ratio: upsilon = d_v / F_out (paper 0.1).
        heads: Nh (paper 8).
        min_key_dims: least d_k per head (paper 20).
        relative: 2D relative position logits (paper: yes).
        max_size: blocks whose attention map is wider keep their plain convolution: 32 augments
            ImageNet ResNets from 28x28 on (the paper's last three stages) and every CIFAR block
            (the paper's WRN); None: every block of the chosen stages.
        input_size: image size the feature-map sizes are probed at; None: 224 for the ImageNet
            stem (with max-pool), 32 otherwise.
        stride_on: "layer" moves a bottleneck's stride from its first 1x1 to the augmented 3x3
            (AA's ResNets stride the 3x3); "block" leaves it where the backbone has it.
    """
    del input_size, stride_on  # only the transform probes sizes and moves strides
    size = max_size or 32
    dk, dv = aa_depths(channels, key_ratio, value_ratio, heads, min_key_dims)
    return AAConv(channels, channels, 1, (size, size), dk, dv, heads, relative)


