"""CBAM: convolutional block attention module (Woo, Park, Lee and Kweon, ECCV 2018;
https://arxiv.org/abs/1807.06521).

    M_c = σ(MLP(AvgPool(x)) + MLP(MaxPool(x)))        shared MLP C -> C/r -> C (Eq. 2)
    x'  = M_c · x
    M_s = σ(f7x7([AvgPool_c(x'); MaxPool_c(x')]))     pooled over channels, 2 -> 1 (Eq. 3)
    x̂   = M_s · x'

Placed inside every residual block, after its last BN and before the addition (Fig. 3);
reduction r = 16 and a 7x7 spatial kernel (§4.1).
"""

from __future__ import annotations

import torch
from torch import nn

from models.methods.se import reduced
from models.registry import register_attention


@register_attention("cbam", position="inside")
class CBAM(nn.Module):
    """Channel then spatial attention, in sequence.

    ``spatial_bn=False`` (default) is Eq. 3: σ of a 7x7 convolution (with bias). The public
    code puts a BN after a bias-free 7x7 convolution: ``spatial_bn=True``. The public code also
    stacks the channel-pooled maps as [max; mean]; we keep the paper's [mean; max] order (only
    the order of the two kernel slices differs).
    """

    def __init__(
        self, channels: int, reduction: int = 16, kernel_size: int = 7, spatial_bn: bool = False
    ) -> None:
        super().__init__()
        hidden = reduced(channels, reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )
        self.spatial = nn.Conv2d(
            2, 1, kernel_size, padding=kernel_size // 2, bias=not spatial_bn
        )
        self.spatial_bn = nn.BatchNorm2d(1) if spatial_bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m_c = torch.sigmoid(self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3))))
        x = x * m_c[:, :, None, None]
        pooled = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.spatial_bn(self.spatial(pooled)))
