"""BAM: bottleneck attention module (Park, Woo, Lee and Kweon, BMVC 2018;
https://arxiv.org/abs/1807.06514).

    M_c = BN(W1 ReLU(W0 GAP(x) + b0) + b1)                        channel branch (Eq. 3)
    M_s = BN(f3_1x1(f2_3x3(f1_3x3(f0_1x1(x)))))                   spatial branch (Eq. 4):
          1x1 C -> C/r, two 3x3 C/r -> C/r with dilation d, 1x1 C/r -> 1
    x̂   = x + x · σ(M_c + M_s) = x · (1 + σ(M_c + M_s))           (Eqs. 1-2)

Placed between stages, at each "bottleneck" of the network, i.e. after every stage but the
last (§3.2, Fig. 1): three modules on a four-stage ResNet, two on a three-stage CIFAR network.
Reduction r = 16, dilation d = 4 (§4.1).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from models.methods.se import reduced
from models.registry import ModelConfigError, register_attention

Layout = Literal["paper", "code"]


class ChannelGate(nn.Module):
    """M_c, shape (N, C, 1, 1)."""

    def __init__(self, channels: int, hidden: int, norm: Layout) -> None:
        super().__init__()
        self.fc0 = nn.Linear(channels, hidden)
        self.hidden_bn = nn.BatchNorm1d(hidden) if norm == "code" else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Linear(hidden, channels)
        self.out_bn = nn.BatchNorm1d(channels) if norm == "paper" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.out_bn(self.fc1(self.relu(self.hidden_bn(self.fc0(x.mean((2, 3)))))))
        return m[:, :, None, None]


class SpatialGate(nn.Module):
    """M_s, shape (N, 1, H, W)."""

    def __init__(self, channels: int, hidden: int, dilation: int, norm: Layout) -> None:
        super().__init__()

        def hidden_act() -> list[nn.Module]:
            bn = [nn.BatchNorm2d(hidden)] if norm == "code" else []
            return [*bn, nn.ReLU(inplace=True)]

        layers: list[nn.Module] = [nn.Conv2d(channels, hidden, 1), *hidden_act()]
        for _ in range(2):
            layers += [
                nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation), *hidden_act()
            ]
        layers.append(nn.Conv2d(hidden, 1, 1))
        if norm == "paper":
            layers.append(nn.BatchNorm2d(1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register_attention("bam", position="between", stages=lambda n: tuple(range(1, n)))
class BAM(nn.Module):
    """Channel and spatial branches in parallel, a residual gate x · (1 + σ(M)).

    Options where the public code departs from the paper:

    - ``combine``: ``"paper"`` (default) adds the branches, M = M_c + M_s (Eq. 2);
      ``"code"`` multiplies them, M = M_c · M_s (the official ``BAM.forward``).
    - ``norm``: ``"paper"`` (default) puts one BN at the end of each branch (Eqs. 3-4, "for
      scale adjustment"), with ReLU between the layers; ``"code"`` puts BN + ReLU after every
      hidden layer of both branches and no BN on the outputs.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        dilation: int = 4,
        combine: Layout = "paper",
        norm: Layout = "paper",
    ) -> None:
        super().__init__()
        for name, value in (("combine", combine), ("norm", norm)):
            if value not in ("paper", "code"):
                raise ModelConfigError(f"unknown BAM {name} {value!r}; choose paper or code")
        hidden = reduced(channels, reduction)
        self.combine = combine
        self.channel = ChannelGate(channels, hidden, norm)
        self.spatial = SpatialGate(channels, hidden, dilation, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m_c, m_s = self.channel(x), self.spatial(x)
        m = m_c + m_s if self.combine == "paper" else m_c * m_s
        return x * (1 + torch.sigmoid(m))
