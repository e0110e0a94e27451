"""Lightweight CIFAR networks of Table X (DenseNet-100, ShuffleNetV2, MobileNetV2,
EfficientNet-B0), as :class:`models.backbones.StagedNet` so BA²M fits between their stages."""

from __future__ import annotations

from collections.abc import Callable

from models.backbones import StagedNet

#: CIFAR form builders by architecture name: ``builder(num_classes) -> StagedNet``.
CIFAR_LIGHTWEIGHT: dict[str, Callable[[int], StagedNet]] = {}
