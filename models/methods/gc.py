"""GC: global context block (Cao, Xu, Lin, Wei and Hu, 2019; https://arxiv.org/abs/1904.11492).

    α   = softmax_j(W_k x_j)                         context modelling: 1x1 conv C -> 1,
    ctx = Σ_j α_j x_j                                softmax over the H*W positions
    t   = W_v2 ReLU(LN(W_v1 ctx))                    transform: 1x1 C -> C/r, LayerNorm, ReLU,
                                                     1x1 C/r -> C
    x̂_i = x_i + t                                    fusion by addition (Eq. 4, Fig. 4d)

Placed inside every residual block, after its last BN and before the addition (the paper's
"after 1x1": §5.1); bottleneck ratio r = 16.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from models.methods.se import reduced
from models.registry import ModelConfigError, register_attention

Fusion = Literal["add", "mul"]


@register_attention("gc", position="inside")
class GlobalContext(nn.Module):
    """Query-independent global context with an SE-like bottleneck transform.

    ``fusion="add"`` (default, the paper's GC block) or ``"mul"`` (a sigmoid gate, the paper's
    ablation). The context's weighted sum is a matrix product, so it counts as
    multiply-accumulates. The public code zero-initialises the last 1x1 convolution
    (``zero_init=True``); the paper does not say, and our default keeps PyTorch's init.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        fusion: Fusion = "add",
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        if fusion not in ("add", "mul"):
            raise ModelConfigError(f"unknown GC fusion {fusion!r}; choose add or mul")
        hidden = reduced(channels, reduction)
        self.fusion = fusion
        self.mask = nn.Conv2d(channels, 1, 1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )
        if zero_init:
            nn.init.zeros_(self.transform[-1].weight)
            nn.init.zeros_(self.transform[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        attn = torch.softmax(self.mask(x).reshape(n, 1, h * w), dim=2)  # (N, 1, HW)
        ctx = torch.matmul(x.reshape(n, c, h * w), attn.transpose(1, 2))  # (N, C, 1)
        t = self.transform(ctx.reshape(n, c, 1, 1))
        return x + t if self.fusion == "add" else x * torch.sigmoid(t)
