"""Lightweight CIFAR networks of Table X (DenseNet-100, ShuffleNetV2, MobileNetV2,
EfficientNet-B0), as :class:`models.backbones.StagedNet` so BA²M fits between their stages.

Each network is torchvision's own definition (blocks, widths, depths, stochastic depth) with a
CIFAR stem, its body split into stages and its last 1x1 convolution (if any) as the head:

============== ================================= ================================== ==========
network        CIFAR form                        stages (BA²M after each)           widths
============== ================================= ================================== ==========
DenseNet-BC    3x3 stem of 2k = 24 channels      dense block + transition, x3       108 150 342
ShuffleNetV2   3x3 stride-1 stem, no max-pool    stage2, stage3, stage4; conv5 head 116 232 464
MobileNetV2    stride-1 stem, the 64-wide rows   ImageNet resolution groups;        16 24 32 96
               at stride 1 instead of 2          1x1 conv to 1280 as head           320
EfficientNet   stride-1 stem                     ImageNet resolution groups;        16 24 40
-B0                                              1x1 conv to 1280 as head           112 320
============== ================================= ================================== ==========

The forms were chosen to come closest to the paper's printed params/FLOPs; the variants tried
and their counts are in ``docs/lightweight.md``. Stem strides are set on torchvision's stem
convolution (as ``models.backbones`` does for bottleneck strides) and DenseNet's 7x7 stem is
replaced by a 3x3 convolution; every other layer is torchvision's, so
``tests/test_lightweight.py`` compares parameter counts with torchvision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn
from torchvision import models as tvm

from models.backbones import StagedNet, cifar_stem

#: MobileNetV2's (expansion t, width c, blocks n, stride s) rows (Sandler et al., Table 2),
#: CIFAR form: the 64-wide rows run at stride 1, so with the stride-1 stem the network
#: downsamples 8x (32 -> 4), as the common CIFAR form (stride 1 on the 24-wide rows) does,
#: but at the paper's 0.07 G (the common form counts 0.088 G).
MOBILENETV2_CIFAR: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 1),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

#: ShuffleNetV2 1x: blocks of stages 2-4 and widths of stem, stages 2-4 and conv5 (Ma et al.,
#: Table 5).
SHUFFLENETV2_1X = ((4, 8, 4), (24, 116, 232, 464, 1024))

#: Indices into torchvision's ``features`` (0 = stem, last = head) of each stage's blocks:
#: the blocks between two downsamplings at ImageNet resolution (reductions 2, 4, 8, 16, 32).
MOBILENETV2_STAGES = ((1, 2), (2, 4), (4, 7), (7, 14), (14, 18))
EFFICIENTNET_STAGES = ((1, 2), (2, 3), (3, 4), (4, 6), (6, 8))


def _staged(
    stem: nn.Module,
    stages: Sequence[nn.Sequential],
    widths: Sequence[int],
    num_classes: int,
    head: nn.Module | None = None,
    head_width: int | None = None,
) -> StagedNet:
    """A StagedNet whose head may change the width (a 1x1 convolution before pooling)."""
    net = StagedNet(stem, list(stages), list(widths), num_classes, head)
    if head_width is not None and head_width != widths[-1]:
        net.fc = nn.Linear(head_width, num_classes)
    return net


def densenet_bc(
    num_classes: int, depth: int = 100, growth: int = 12, bn_size: int = 4
) -> StagedNet:
    """DenseNet-BC (Huang et al. 2017) for CIFAR: 3x3 stem of 2k channels, three dense blocks
    of (depth - 4) / 6 bottleneck layers, transitions halving the width (compression 0.5)."""
    layers = (depth - 4) // 6
    tv = tvm.DenseNet(
        growth_rate=growth, block_config=(layers,) * 3, num_init_features=2 * growth,
        bn_size=bn_size, num_classes=num_classes,
    ).features
    stages = [
        nn.Sequential(tv.denseblock1, tv.transition1),
        nn.Sequential(tv.denseblock2, tv.transition2),
        nn.Sequential(tv.denseblock3),
    ]
    widths = [tv.transition1.conv.out_channels, tv.transition2.conv.out_channels]
    widths.append(tv.norm5.num_features)
    head = nn.Sequential(tv.norm5, nn.ReLU(inplace=True))
    return _staged(cifar_stem(2 * growth, norm=False), stages, widths, num_classes, head)


def shufflenet_v2(num_classes: int) -> StagedNet:
    """ShuffleNetV2 1x (Ma et al. 2018) for CIFAR: stride-1 3x3 stem, no max-pool."""
    repeats, widths = SHUFFLENETV2_1X
    tv = tvm.ShuffleNetV2(list(repeats), list(widths), num_classes=num_classes)
    tv.conv1[0].stride = (1, 1)
    stages = [tv.stage2, tv.stage3, tv.stage4]
    return _staged(tv.conv1, stages, widths[1:4], num_classes, tv.conv5, widths[4])


def mobilenet_v2(
    num_classes: int,
    setting: Sequence[tuple[int, int, int, int]] = MOBILENETV2_CIFAR,
    stem_stride: int = 1,
) -> StagedNet:
    """MobileNetV2 1.0 (Sandler et al. 2018) for CIFAR: ``setting`` rows and a stride-1 stem."""
    rows = [list(row) for row in setting]
    tv = tvm.mobilenet_v2(num_classes=num_classes, inverted_residual_setting=rows)
    f = tv.features
    f[0][0].stride = (stem_stride, stem_stride)
    stages = [f[a:b] for a, b in MOBILENETV2_STAGES]
    widths = [stage[-1].out_channels for stage in stages]
    return _staged(f[0], stages, widths, num_classes, f[-1], tv.last_channel)


def efficientnet_b0_cifar(num_classes: int, head: bool = True) -> StagedNet:
    """EfficientNet-B0 (Tan & Le 2019) for CIFAR: stride-1 stem. ``head=False`` drops the 1x1
    convolution to 1280 before pooling (the classifier then reads the 320-wide last stage)."""
    f = tvm.efficientnet_b0(num_classes=num_classes).features
    f[0][0].stride = (1, 1)
    stages = [f[a:b] for a, b in EFFICIENTNET_STAGES]
    widths = [stage[-1][-1].out_channels for stage in stages]
    if not head:
        return _staged(f[0], stages, widths, num_classes)
    return _staged(f[0], stages, widths, num_classes, f[-1], f[-1][0].out_channels)


#: CIFAR form builders by architecture name: ``builder(num_classes) -> StagedNet``.
CIFAR_LIGHTWEIGHT: dict[str, Callable[[int], StagedNet]] = {
    "densenet100_bc": densenet_bc,
    "shufflenetv2": shufflenet_v2,
    "mobilenetv2": mobilenet_v2,
    "efficientnet_b0": efficientnet_b0_cifar,
}
