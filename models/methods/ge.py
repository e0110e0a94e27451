"""GE: gather-excite (Hu, Shen, Albanie, Sun and Vedaldi, NeurIPS 2018;
https://arxiv.org/abs/1810.12348).

    x̂ = x · σ(ξ_E(ξ_G(x)))      gather ξ_G over a spatial extent, excite ξ_E back to each position

With the global extent (the paper's best, used here) the gathered map is 1x1 and excite's
interpolation is a broadcast. Three variants (§3):

- ``"theta_minus"`` (GE-θ⁻): gather = global average pooling; no parameters.
- ``"theta"`` (GE-θ, default): gather = a depth-wise convolution whose kernel spans the whole
  H x W map, then BN; C·H·W + 2C parameters per module.
- ``"theta_plus"`` (GE-θ⁺): GE-θ's gather, then an SE-like excite 1x1 C -> C/r -> C.

Placed inside every residual block, after its last BN and before the addition (§4), like SE.

Why GE-θ is the default: Table V prints ResNet-50 + GE at 31.20 M / 3.87 G. GE-θ adds 5.55 M
(31.11 M, within 1 %); GE-θ⁻ adds nothing (25.56 M). The same table's "ResNet-101 + GE" row
(33.70 M / 3.87 G, below plain ResNet-101) is what GE-θ⁺ gives on ResNet-50 (33.64 M): it
appears to be the GE paper's ResNet-50 + GE-θ⁺ row. See docs/methods.md.

GE-θ's kernel depends on the feature-map size, which a module built from its channel count
alone cannot know; GE therefore registers as a transform: :func:`place_gather_excite` measures
the size at every insertion point with one forward pass at the network's input size, then
inserts the modules where "inside" would.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from models.backbones import RESIDUAL_TAIL, StagedNet
from models.methods.se import reduced
from models.probe import output_shapes, paper_input_size
from models.registry import ModelConfigError, register_attention

Variant = Literal["theta", "theta_minus", "theta_plus"]
VARIANTS = ("theta", "theta_minus", "theta_plus")


class GatherExcite(nn.Module):
    """One GE module for a C x H x W feature map (global extent).

    ``feature_size`` (H, W) is the map it will see; GE-θ⁻ ignores it (pass None)."""

    def __init__(
        self,
        channels: int,
        feature_size: tuple[int, int] | None,
        variant: Variant = "theta",
        reduction: int = 16,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ModelConfigError(f"unknown GE variant {variant!r}; choose {', '.join(VARIANTS)}")
        self.variant, self.feature_size = variant, feature_size
        self.gather: nn.Module | None = None
        self.excite: nn.Module = nn.Identity()
        if variant != "theta_minus":
            if feature_size is None:
                raise ModelConfigError(f"GE variant {variant} needs the feature_size (H, W)")
            self.gather = nn.Sequential(
                nn.Conv2d(channels, channels, tuple(feature_size), groups=channels, bias=False),
                nn.BatchNorm2d(channels),
            )
        if variant == "theta_plus":
            hidden = reduced(channels, reduction)
            self.excite = nn.Sequential(
                nn.Conv2d(channels, hidden, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, channels, 1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gather is None:
            g = x.mean((2, 3), keepdim=True)
        else:
            if tuple(x.shape[2:]) != tuple(self.feature_size or ()):
                raise ValueError(
                    f"GE-{self.variant} was built for {self.feature_size} maps, got "
                    f"{tuple(x.shape[2:])}: build the model for this input size"
                )
            g = self.gather(x)
        return x * torch.sigmoid(self.excite(g))

    def extra_repr(self) -> str:
        return f"variant={self.variant}, feature_size={self.feature_size}"


def place_gather_excite(
    model: StagedNet,
    stages: list[int],
    variant: Variant = "theta",
    reduction: int = 16,
    input_size: int | None = None,
) -> None:
    """Put a GE module on the residual branch of every block of ``stages`` (1-based), sized by
    one forward pass at ``input_size`` (default: 224 for an ImageNet stem, which max-pools,
    else 32)."""
    tails: list[tuple[nn.Module, str]] = []
    for s in stages:
        for block in model.stages[s - 1]:
            if type(block) not in RESIDUAL_TAIL:
                raise ModelConfigError(f"GE cannot go inside {type(block).__name__} blocks")
            tails.append((block, RESIDUAL_TAIL[type(block)]))
    layers = [getattr(block, name) for block, name in tails]
    shapes = output_shapes(model, layers, input_size or paper_input_size(model))
    for (block, name), layer, (c, h, w) in zip(tails, layers, shapes):
        setattr(block, name, nn.Sequential(layer, GatherExcite(c, (h, w), variant, reduction)))


register_attention("ge", position="replace", transform=place_gather_excite)(GatherExcite)
