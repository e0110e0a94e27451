"""SGE: spatial group-wise enhance (Li, Hu and Yang, 2019; https://arxiv.org/abs/1905.09646).

The C channels are split into G groups; in each group, at every position i,

    g   = mean_i x_i                    the group's global descriptor
    c_i = g · x_i                       similarity of the local feature to the descriptor
    ĉ_i = (c_i - μ_c) / sqrt(σ_c² + ε)  normalised over the positions of the group
    x̂_i = x_i · σ(γ ĉ_i + β)           one (γ, β) pair per group

Placed inside every residual block, after its last BN and before the addition; G = 64 (§4.1).
Adds 2G parameters per module.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.registry import ModelConfigError, register_attention


@register_attention("sge", position="inside")
class SpatialGroupEnhance(nn.Module):
    """Group-wise spatial gate. γ starts at 0 and β at 1, as the public code does.

    Departures from the public code: the spatial variance is the paper's biased one with ε
    inside the square root (the code adds ε to the unbiased std); the products g · x_i are a
    batched matrix product, so they count as multiply-accumulates. A stage narrower than G
    channels (or not divisible by G) uses gcd(G, C) groups.
    """

    def __init__(self, channels: int, groups: int = 64, eps: float = 1e-5) -> None:
        super().__init__()
        if groups < 1:
            raise ModelConfigError(f"SGE groups must be a positive integer, got {groups}")
        self.groups = math.gcd(groups, channels)
        self.eps = eps
        self.gamma = nn.Parameter(torch.zeros(self.groups))
        self.beta = nn.Parameter(torch.ones(self.groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        xg = x.reshape(n * self.groups, c // self.groups, h * w)  # (NG, C/G, HW)
        g = xg.mean(2, keepdim=True)  # (NG, C/G, 1)
        sim = torch.matmul(g.transpose(1, 2), xg).reshape(n, self.groups, h * w)
        mu = sim.mean(2, keepdim=True)
        var = sim.var(2, unbiased=False, keepdim=True)
        sim = (sim - mu) / (var + self.eps).sqrt()
        gate = torch.sigmoid(sim * self.gamma[:, None] + self.beta[:, None])  # (N, G, HW)
        return (xg * gate.reshape(n * self.groups, 1, h * w)).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
