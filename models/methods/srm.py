"""SRM: style-based recalibration (Lee, Kim and Nam, ICCV 2019; https://arxiv.org/abs/1903.10829).

    t_c = [μ_c, σ_c]                  style pooling: per-channel mean and standard deviation
    z_c = w_c · t_c                   channel-wise fully connected (CFC): 2 weights per channel
    x̂_c = σ(BN(z)_c) · x_c

Placed inside every residual block, after its last BN and before the addition (§3.3). Adds
4C parameters per module (2C CFC, 2C BN).
"""

from __future__ import annotations

import torch
from torch import nn

from models.registry import register_attention


@register_attention("srm", position="inside")
class StyleRecalibration(nn.Module):
    """Style pooling, CFC, BN, sigmoid gate.

    Departures from the public code: σ_c is the paper's sqrt(mean((x - μ)²) + ε) (the code uses
    the unbiased variance, undefined on a 1x1 map); the CFC is a depthwise ``nn.Conv1d`` with
    PyTorch's default init (the code zero-fills it, which leaves the BN scale with a zero
    gradient on the first step).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.cfc = nn.Conv1d(channels, channels, kernel_size=2, groups=channels, bias=False)
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        mean = flat.mean(2)
        std = (flat.var(2, unbiased=False) + self.eps).sqrt()
        z = self.cfc(torch.stack((mean, std), dim=2)).squeeze(2)  # N, C
        return x * torch.sigmoid(self.bn(z))[:, :, None, None]
