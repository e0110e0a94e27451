"""SK: selective kernel convolution, in place of each bottleneck's 3x3 convolution.

Li, Wang, Hu and Yang, "Selective Kernel Networks", CVPR 2019, https://arxiv.org/abs/1903.06586.
An SK convolution runs M convolution paths over the same input (Split), sums them and squeezes
the sum to a d-vector (Fuse: GAP -> FC -> BN -> ReLU, d = max(C/r, L)), and mixes the paths with
per-channel weights softmax-normalised across the paths (Select: M FCs d -> C, softmax over M).

Two path sets, selected by ``variant`` (see ``docs/methods-replace.md``):

* ``"sknet"``: SKNet-50/101 of the SK paper (Table 1): M=2 paths of 3x3 convolutions with G=32
  groups, the second with dilation 2 standing for the 5x5 kernel (§3.1), r=16, L=32, in
  ResNeXt-50/101 (32x4d). Table XII's SKNet rows (27.50 M / 4.47 G, 48.90 M / 8.46 G).
* ``"resnet"``: "ResNet + SK" of Table V (26.15 M / 4.19 G, 45.68 M / 7.98 G), whose values are
  those of the SGE paper (Li, Hu and Yang 2019, arXiv:1905.09646, Table 3), built by its code
  (implus/PytorchInsight, ``resnet_sk.py``): the block's own dense 3x3 as path 1, a 3x3 with 32
  groups as path 2 (no dilation), d = C/16 with no floor.

``variant="auto"`` picks "sknet" when the block's 3x3 is grouped (ResNeXt) and "resnet" when it is
dense (ResNet): the reading that reproduces both tables' printed parameter counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from models.backbones import StagedNet
from models.registry import ModelConfigError, bottleneck_3x3s, register_attention

Variant = Literal["auto", "sknet", "resnet"]
StrideOn = Literal["layer", "block"]
VARIANTS = ("auto", "sknet", "resnet")


class SKConv(nn.Module):
    """Selective kernel convolution: (N, C_in, H, W) -> (N, C_out, H/s, W/s).

    Args:
        in_channels, out_channels: widths of the input and of every path.
        stride: stride of every path.
        paths: (groups, dilation) of each 3x3 path; M = len(paths).
        width: d, the width of the fused vector z.

    Each path is conv3x3 -> BN -> ReLU (SK paper, Fig. 1); the FCs have no bias, as the paper's
    z = ReLU(BN(W s)) and a_c = softmax(A_c z, B_c z). The M select FCs are one d -> M*C layer.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        paths: Sequence[tuple[int, int]] = ((32, 1), (32, 2)),
        width: int = 32,
    ) -> None:
        super().__init__()
        if len(paths) < 2:
            raise ModelConfigError(f"SK needs at least two paths, got {list(paths)}")
        self.paths = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, stride, padding=dilation,
                          dilation=dilation, groups=groups, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            )
            for groups, dilation in paths
        )
        self.fuse = nn.Sequential(
            nn.Linear(out_channels, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)
        )
        self.select = nn.Linear(width, len(paths) * out_channels, bias=False)
        self.out_channels = out_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.stack([path(x) for path in self.paths], 1)  # N, M, C, H, W
        z = self.fuse(u.sum(1).mean((2, 3)))  # N, d
        a = self.select(z).view(x.shape[0], len(self.paths), self.out_channels)
        a = torch.softmax(a, dim=1)  # across the paths, per channel
        return (u * a[..., None, None]).sum(1)


def sk_width(channels: int, reduction: int, min_width: int) -> int:
    """d = max(C / r, L) (SK paper, Eq. 4)."""
    if reduction < 1 or (channels % reduction and channels > reduction):
        raise ModelConfigError(
            f"SK reduction r={reduction} must be a positive divisor of {channels}"
        )
    return max(channels // reduction, min_width, 1)


def apply_sk(
    model: StagedNet,
    stages: Sequence[int],
    variant: Variant = "auto",
    reduction: int = 16,
    min_width: int | None = None,
    groups: int = 32,
    stride_on: StrideOn = "layer",
) -> None:
    """Replace conv2 (and bn2: each path has its own BN) of every bottleneck in ``stages``."""
    _check(variant, VARIANTS, "variant")
    _check(stride_on, ("layer", "block"), "stride_on")
    for block, conv, stride in bottleneck_3x3s(model, stages, "SK", stride_on):
        block.conv2 = _make(conv.in_channels, conv.out_channels, stride,
                            _resolve(variant, conv.groups), reduction, min_width, groups,
                            conv.groups)
        block.bn2 = nn.Identity()


@register_attention("sk", position="replace", transform=apply_sk)
def sk(
    channels: int,
    variant: Variant = "auto",
    reduction: int = 16,
    min_width: int | None = None,
    groups: int = 32,
    stride_on: StrideOn = "layer",
) -> SKConv:
    """A stride-1 SK convolution of ``channels`` (what the transform puts in each bottleneck).

    Args:
        channels: C, the width of the replaced 3x3 convolution.
        variant: "sknet", "resnet" or "auto" (see the module docstring); here "auto" is "sknet".
        reduction: r of d = max(C/r, L) (paper: 16).
        min_width: L (paper: 32 for SKNet); None: 32 for "sknet", no floor for "resnet".
        groups: G of the grouped paths (paper: 32).
        stride_on: "layer" moves a bottleneck's stride from its first 1x1 to the SK convolution
            (where SKNet and the SGE code put it); "block" leaves it where the backbone has it.
    """
    del stride_on  # a standalone SK convolution has no bottleneck to take the stride from
    _check(variant, VARIANTS, "variant")
    return _make(channels, channels, 1, _resolve(variant, groups), reduction, min_width, groups,
                 block_groups=1)


def _resolve(variant: Variant, block_groups: int) -> str:
    if variant != "auto":
        return variant
    return "sknet" if block_groups > 1 else "resnet"


def _make(
    in_channels: int,
    out_channels: int,
    stride: int,
    variant: str,
    reduction: int,
    min_width: int | None,
    groups: int,
    block_groups: int,
) -> SKConv:
    if out_channels % groups or in_channels % groups:
        raise ModelConfigError(f"SK groups G={groups} must divide the width {out_channels}")
    if variant == "sknet":
        paths, floor = ((groups, 1), (groups, 2)), 32
    else:
        paths, floor = ((block_groups, 1), (groups, 1)), 1
    width = sk_width(out_channels, reduction, floor if min_width is None else min_width)
    return SKConv(in_channels, out_channels, stride, paths, width)


def _check(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ModelConfigError(f"unknown SK {name} {value!r}; choose one of {', '.join(choices)}")
