"""A detection job's model: what ``models.detection.build_detector`` needs, as a config.

A :class:`DetectorSpec` is a detection job's ``model`` section (``harness.plan.detection``
writes it); training, counting and the report build the network from it the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

#: ``pretrained`` values that are not a file: no weights (a backbone trained from scratch)
#: and the harness's own ImageNet job (``job:<config hash>``, Table V's row of the same
#: backbone and attention).
NO_WEIGHTS = "none"
JOB_PREFIX = "job:"


@dataclass(frozen=True, kw_only=True)
class DetectorSpec:
    """A detector over a zoo ResNet (docs/detection.md).

    ``num_classes`` counts the background (VOC 21, COCO 91 by category id, shapes 4);
    ``options`` are the attention method's options in force (empty without one);
    ``min_size``/``max_size`` are the images' resize limits (short, long side);
    ``pretrained`` is :data:`NO_WEIGHTS`, ``job:<config hash>`` (a harness ImageNet job's
    checkpoint) or the path of a torchvision-format ResNet state dict."""

    detector: str  # "faster_rcnn", "mask_rcnn", "retinanet"
    arch: str
    num_classes: int
    attention: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    norm: str = "eval"  # "eval" (MMDetection), "frozen" (torchvision) or "train"
    frozen_stages: int = 1
    fpn_channels: int = 256
    sampler: str = "random"  # "random" or "ohem" (Faster R-CNN)
    ohem_rank_by: str = "cls"  # "cls" (MMDetection v1) or "cls+box" (the OHEM paper)
    cls_loss: str = "focal"  # "focal" or "softmax" (RetinaNet)
    min_size: int = 800
    max_size: int = 1333
    pretrained: str = NO_WEIGHTS

    @property
    def bottleneck_stride(self) -> str:
        """Where a bottleneck's stride sits: "1x1" for a harness ImageNet job's backbone (the
        classification zoo's default), "3x3" for torchvision's weights and from scratch."""
        return "1x1" if self.pretrained.startswith(JOB_PREFIX) else "3x3"

    @property
    def pretrained_job(self) -> str | None:
        """The config hash of the ImageNet job whose backbone this detector starts from."""
        if self.pretrained.startswith(JOB_PREFIX):
            return self.pretrained[len(JOB_PREFIX):]
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        return d

    def build(self) -> nn.Module:
        """The untrained detector (no weights loaded: see ``harness.training.detjob``)."""
        from models.detection import build_detector

        return build_detector(
            self.detector, self.num_classes, self.arch, self.attention, norm=self.norm,
            frozen_stages=self.frozen_stages, fpn_channels=self.fpn_channels,
            attention_options=self.options, sampler=self.sampler, cls_loss=self.cls_loss,
            rank_by=self.ohem_rank_by, bottleneck_stride=self.bottleneck_stride,
            min_size=self.min_size, max_size=self.max_size)

    def check(self) -> None:
        """Build once on the meta device: raises ValueError or TypeError when the options
        cannot make this detector."""
        with torch.device("meta"):
            self.build()
