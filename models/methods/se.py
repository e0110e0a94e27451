"""SE: squeeze-and-excitation (Hu, Shen and Sun, CVPR 2018; https://arxiv.org/abs/1709.01507).

    s = σ(W2 δ(W1 GAP(x)))      W1: C -> C/r, W2: C/r -> C (with biases), δ = ReLU
    x̂ = s · x

Placed inside every residual block, on the residual branch after its last BN and before the
addition (the paper's SE-ResNet module, Fig. 3); reduction r = 16 (§6.1).
"""

from __future__ import annotations

import torch
from torch import nn

from models.registry import ModelConfigError, register_attention


def reduced(channels: int, reduction: int) -> int:
    """Hidden width C/r of a reduction MLP (at least 1)."""
    if reduction < 1:
        raise ModelConfigError(f"reduction must be a positive integer, got {reduction}")
    return max(channels // reduction, 1)


@register_attention("se", position="inside")
class SqueezeExcite(nn.Module):
    """Channel gate from globally pooled features. As in the paper; the two FC layers are
    ``nn.Linear`` on the pooled vector (the public code's 1x1 convolutions are the same map)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced(channels, reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc2(self.relu(self.fc1(x.mean((2, 3))))))
        return x * s[:, :, None, None]
