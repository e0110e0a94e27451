"""Shapes of layers' outputs, found by one dry forward pass (for methods whose modules depend
on the feature-map size: GE's gather kernel, AA's relative position tables)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.backbones import StagedNet


def paper_input_size(model: StagedNet) -> int:
    """The paper's image size for the model's form: the ImageNet stem ends with a max-pool."""
    return 224 if any(isinstance(m, nn.MaxPool2d) for m in model.stem.modules()) else 32


def output_shapes(model: nn.Module, layers: Sequence[nn.Module],
                  input_size: int) -> list[torch.Size]:
    """(C, H, W) of each layer's first output on one ``input_size`` image (eval, no grad)."""
    seen: dict[int, torch.Size] = {}

    def record(module: nn.Module, _inputs: object, out: torch.Tensor) -> None:
        seen.setdefault(id(module), out.shape[1:])

    hooks = [layer.register_forward_hook(record) for layer in layers]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return [seen[id(layer)] for layer in layers]
