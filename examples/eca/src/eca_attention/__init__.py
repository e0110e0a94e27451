"""ECA: efficient channel attention (Wang, Wu, Zhu, Li, Zuo and Hu, CVPR 2020;
https://arxiv.org/abs/1910.03151).

    y = GAP(x)                                   one value per channel, C values
    w = σ(Conv1D_k(y))                           a 1-D convolution across channels, no bias
    k = |log2(C)/γ + b/γ|_odd, γ = 2, b = 1      the kernel grows with the channel count
    x̂ = w · x

No dimensionality reduction (unlike SE): each channel's weight comes from its k neighbours.
Placed as the paper places it: inside every residual block, on the residual branch before the
addition (as SE), the class attributes below tell ba2m-bench so.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__version__ = "0.1.0"


def eca_kernel(channels: int, gamma: float = 2, b: float = 1) -> int:
    """The paper's adaptive kernel size: |log2(C)/γ + b/γ|, taken to the nearest odd
    integer (an even value goes up by one), at least 1."""
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    return max(t if t % 2 else t + 1, 1)


class ECA(nn.Module):
    """Efficient channel attention; ``k_size`` None: the adaptive kernel of the paper."""

    #: where ba2m-bench puts it (``register_attention``'s arguments): every residual block
    position = "inside"
    stages = None
    inside_scope = "all"

    def __init__(self, channels: int, gamma: float = 2, b: float = 1,
                 k_size: int | None = None) -> None:
        super().__init__()
        k = k_size or eca_kernel(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3))  # N x C
        w = torch.sigmoid(self.conv(y[:, None, :]))  # N x 1 x C
        return x * w[:, 0, :, None, None]
