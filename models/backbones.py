"""The ResNet family of the paper's tables, built from torchvision's residual blocks.

One network class, :class:`StagedNet` (stem -> stages -> pooled classifier), covers every
backbone: ImageNet and CIFAR stems, three- and four-stage networks, width multipliers and
pre-activation blocks. torchvision's ``ResNet`` hard-codes four stages, a 512-wide classifier
input and the stride on the 3x3 convolution, so only its blocks (``BasicBlock``,
``Bottleneck``) and conv helpers are reused; ``tests/test_backbones.py`` checks that our
ResNet-18/50 equal torchvision's parameter for parameter.

Bottlenecks take their stride on the first 1x1 convolution by default (original ResNet v1,
as in the paper's FLOP counts); ``bottleneck_stride="3x3"`` gives torchvision's v1.5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1, conv3x3

BottleneckStride = Literal["1x1", "3x3"]


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016b; Zagoruyko & Komodakis 2016):
    BN-ReLU-conv3x3-BN-ReLU-conv3x3, 1x1 projection shortcut when the shape changes."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            conv1x1(inplanes, planes, stride) if stride != 1 or inplanes != planes else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        identity = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


#: Name of the last layer of each block's residual branch, where "inside" attention goes.
RESIDUAL_TAIL: dict[type[nn.Module], str] = {
    BasicBlock: "bn2",
    Bottleneck: "bn3",
    PreActBlock: "conv2",
}


class StagedNet(nn.Module):
    """stem -> stages -> [head norm] -> global average pool -> fc.

    ``self.after[i]`` is an identity slot run after stage ``i``: between-stage attention
    (Eq. 15) is placed there. ``stage_channels[i]`` is the output width of stage ``i``.
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: list[nn.Sequential],
        stage_channels: list[int],
        num_classes: int,
        head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.after = nn.ModuleList(nn.Identity() for _ in stages)
        self.stage_channels = list(stage_channels)
        self.head = head if head is not None else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(stage_channels[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage, after in zip(self.stages, self.after):
            x = after(stage(x))
        x = self.pool(self.head(x))
        return self.fc(torch.flatten(x, 1))


def imagenet_stem(width: int = 64) -> nn.Sequential:
    """7x7 stride-2 convolution, BN, ReLU, 3x3 stride-2 max-pool."""
    return nn.Sequential(
        nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def cifar_stem(width: int, norm: bool = True) -> nn.Sequential:
    """3x3 stride-1 convolution (BN, ReLU unless the blocks pre-activate), no max-pool."""
    layers: list[nn.Module] = [conv3x3(3, width)]
    if norm:
        layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def residual_stage(
    block: type[BasicBlock] | type[Bottleneck],
    inplanes: int,
    planes: int,
    depth: int,
    stride: int,
    groups: int = 1,
    base_width: int = 64,
    bottleneck_stride: BottleneckStride = "1x1",
) -> nn.Sequential:
    """One stage of torchvision blocks, as ``ResNet._make_layer`` builds it."""
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(conv1x1(inplanes, out, stride), nn.BatchNorm2d(out))
    blocks = [block(inplanes, planes, stride, downsample, groups, base_width)]
    if block is Bottleneck and stride != 1 and bottleneck_stride == "1x1":
        blocks[0].conv1.stride, blocks[0].conv2.stride = (stride, stride), (1, 1)
    blocks += [block(out, planes, groups=groups, base_width=base_width) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


@dataclass(frozen=True)
class ResNetSpec:
    """Numbers that distinguish one residual network from another."""

    block: type[BasicBlock] | type[Bottleneck]
    depths: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    groups: int = 1
    base_width: int = 64
    stem_width: int = 64


def resnet(
    spec: ResNetSpec,
    form: str,
    num_classes: int,
    bottleneck_stride: BottleneckStride = "1x1",
) -> StagedNet:
    """A ResNet/ResNeXt/WRN-18 in ImageNet form (7x7 stem) or CIFAR form (3x3 stride-1 stem)."""
    stem = imagenet_stem(spec.stem_width) if form == "imagenet" else cifar_stem(spec.stem_width)
    stages, channels, inplanes = [], [], spec.stem_width
    for i, (depth, width) in enumerate(zip(spec.depths, spec.widths)):
        stage = residual_stage(
            spec.block,
            inplanes,
            width,
            depth,
            stride=1 if i == 0 else 2,
            groups=spec.groups,
            base_width=spec.base_width,
            bottleneck_stride=bottleneck_stride,
        )
        inplanes = width * spec.block.expansion
        stages.append(stage)
        channels.append(inplanes)
    return StagedNet(stem, stages, channels, num_classes)


def preact_net(depths: tuple[int, ...], widths: tuple[int, ...], num_classes: int) -> StagedNet:
    """Pre-activation CIFAR network (PreResNet, Wide ResNet): 3x3 stem of 16, final BN-ReLU."""
    stages, inplanes = [], 16
    for i, (depth, width) in enumerate(zip(depths, widths)):
        stride = 1 if i == 0 else 2
        blocks = [PreActBlock(inplanes if j == 0 else width, width, stride if j == 0 else 1)
                  for j in range(depth)]
        stages.append(nn.Sequential(*blocks))
        inplanes = width
    head = nn.Sequential(nn.BatchNorm2d(inplanes), nn.ReLU(inplace=True))
    return StagedNet(cifar_stem(16, norm=False), stages, list(widths), num_classes, head)


def _wrn28(k: int) -> Callable[..., StagedNet]:
    return lambda num_classes: preact_net((4, 4, 4), (16 * k, 32 * k, 64 * k), num_classes)


_R18 = ResNetSpec(BasicBlock, (2, 2, 2, 2))
_R34 = ResNetSpec(BasicBlock, (3, 4, 6, 3))
_R50 = ResNetSpec(Bottleneck, (3, 4, 6, 3))
_R101 = ResNetSpec(Bottleneck, (3, 4, 23, 3))

#: ImageNet (224x224) specifications by architecture name.
IMAGENET_RESNETS: dict[str, ResNetSpec] = {
    "resnet18": _R18,
    "resnet34": _R34,
    "resnet50": _R50,
    "resnet101": _R101,
    "wrn18x1.5": ResNetSpec(BasicBlock, (2, 2, 2, 2), (96, 192, 384, 768)),
    "wrn18x2": ResNetSpec(BasicBlock, (2, 2, 2, 2), (128, 256, 512, 1024)),
    "resnext50_32x4d": ResNetSpec(Bottleneck, (3, 4, 6, 3), groups=32, base_width=4),
    "resnext101_32x4d": ResNetSpec(Bottleneck, (3, 4, 23, 3), groups=32, base_width=4),
}

#: CIFAR (32x32) residual specifications by architecture name.
CIFAR_RESNETS: dict[str, ResNetSpec] = {
    # He et al. 2016 §4.2 (projection shortcuts); not in the paper's tables: a small network
    # for tests and quick checks of the pipeline on real images.
    "resnet20": ResNetSpec(BasicBlock, (3, 3, 3), (16, 32, 64), stem_width=16),
    "resnet50": _R50,
    "resnet101": _R101,
    "resnext29_8x64d": ResNetSpec(Bottleneck, (3, 3, 3), (64, 128, 256), groups=8, base_width=64),
}

#: CIFAR pre-activation networks by architecture name.
CIFAR_PREACT: dict[str, Callable[..., StagedNet]] = {
    "preresnet110": lambda num_classes: preact_net((18, 18, 18), (16, 32, 64), num_classes),
    "wrn28_8": _wrn28(8),
    "wrn28_10": _wrn28(10),
}


class PadShortcut(nn.Module):
    """He et al. 2016's option-A shortcut: parameter-free. Where the residual branch halves
    the feature map and widens it, the identity takes every ``stride``-th pixel and the
    channels it lacks are zeros (§4.1: "zero-padding shortcuts are used for increasing
    dimensions, and all shortcuts are parameter-free"; §4.2, CIFAR: "the shortcut ... is
    performed with a stride of 2")."""

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        if planes < inplanes:
            raise ValueError(f"option-A shortcut cannot narrow {inplanes} to {planes} channels")
        self.stride, self.extra = stride, planes - inplanes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            # F.pad pads the last dimensions first: (W, W, H, H, C, C); zeros after the channels
            x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.extra))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


#: He et al. 2016 §4.2's CIFAR ResNets: 6n + 2 layers, n basic blocks in each of three stages.
OPTION_A_WIDTHS = (16, 32, 64)


def option_a_resnet(n: int, num_classes: int) -> StagedNet:
    """The CIFAR ResNet-(6n+2) of He et al. 2016 (§4.2) with option-A shortcuts: a 3x3 stem of
    16 channels, three stages of ``n`` torchvision ``BasicBlock``s of 16, 32 and 64 channels
    (stride 2 on the first block of stages 2 and 3), global average pooling, a linear layer.
    Every shortcut is an identity (:class:`PadShortcut` where the shape changes): no
    parameter besides the 3x3 convolutions, batch norms and the classifier."""
    if n < 1:
        raise ValueError(f"option-A ResNet needs n >= 1 blocks per stage, got {n}")
    stages, inplanes = [], OPTION_A_WIDTHS[0]
    for i, width in enumerate(OPTION_A_WIDTHS):
        stride = 1 if i == 0 else 2
        short = PadShortcut(inplanes, width, stride) if stride != 1 or inplanes != width else None
        blocks = [BasicBlock(inplanes, width, stride, short)]
        blocks += [BasicBlock(width, width) for _ in range(n - 1)]
        stages.append(nn.Sequential(*blocks))
        inplanes = width
    return StagedNet(cifar_stem(OPTION_A_WIDTHS[0]), stages, list(OPTION_A_WIDTHS), num_classes)


#: He et al. 2016's CIFAR ResNets with option-A shortcuts, by name -> blocks per stage (n):
#: "resnet20a" is ResNet-20 as the paper built it (0.27 M parameters), not the zoo's
#: "resnet20" (projection shortcuts, 0.28 M at 10 classes).
CIFAR_OPTION_A: dict[str, int] = {
    "resnet20a": 3,
    "resnet32a": 5,
    "resnet44a": 7,
    "resnet56a": 9,
    "resnet110a": 18,
}
