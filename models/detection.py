"""Detectors of the paper's Tables III, IV and XIV-XVI over this zoo's ResNets, built from
torchvision's classes (``FasterRCNN``, ``MaskRCNN``, ``RetinaNet``, ``BackboneWithFPN``).

:class:`ResNetBody` turns a zoo network (``build_model``: any attention placed as its paper
says) into torchvision's layout: children ``conv1, bn1, relu, maxpool, layer1..layer4`` where
``layerN`` is stage N's blocks followed by what sits after the stage (BA²M:
``layerN.<last>``), so ``IntermediateLayerGetter`` / ``BackboneWithFPN`` work unchanged and a
torchvision-format ResNet state dict loads by name (``strict=False``: no ``fc``).

Options are MMDetection v1's (``norm="eval"``: BatchNorm statistics frozen, affine
parameters trained; ``frozen_stages=1``: stem and stage 1 frozen) or torchvision's
(``norm="frozen"``: ``FrozenBatchNorm2d``), for a pretrained backbone; a backbone trained from
scratch (smoke runs) takes ``norm="train", frozen_stages=0``. Only the backbone's own
BatchNorms and layers are affected: an attention module's parameters and norms are new layers
and always train. The ``*_resnet50_fpn`` builders are never used: without weights they make
every BatchNorm trainable whatever was asked.

Bottlenecks take their stride on the 3x3 convolution by default here (MMDetection's "pytorch"
style and torchvision's weights), where the classification zoo's default is the 1x1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from models.detection_heads import OHEMRoIHeads, RankBy, SoftmaxRetinaNet
from models.registry import ModelConfigError, attention_spec, build_model

NormMode = Literal["eval", "frozen", "train"]
DETECTORS = ("faster_rcnn", "mask_rcnn", "retinanet")


class ResNetBody(nn.Module):
    """A zoo ResNet (ImageNet stem, four stages) without its classifier, in torchvision's
    layout; ``stage_channels[i]`` is ``layer{i+1}``'s output width (strides 4, 8, 16, 32)."""

    def __init__(self, net: nn.Module, attention_types: tuple[type, ...] = (),
                 norm: NormMode = "eval", frozen_stages: int = 1) -> None:
        super().__init__()
        stages, stem = getattr(net, "stages", ()), getattr(net, "stem", None)
        if len(stages) != 4 or not isinstance(stem, nn.Sequential) or len(stem) != 4:
            raise ModelConfigError("a detection backbone needs an ImageNet-form ResNet "
                                   "(7x7 stem with max-pool, four stages)")
        if norm not in ("eval", "frozen", "train") or not 0 <= frozen_stages <= 4:
            raise ModelConfigError(f"norm {norm!r} / frozen_stages {frozen_stages}: choose "
                                   "norm eval, frozen or train and frozen_stages 0..4")
        self.conv1, self.bn1, self.relu, self.maxpool = stem
        for i, (stage, after) in enumerate(zip(stages, net.after), 1):
            tail = [] if isinstance(after, nn.Identity) else [after]
            setattr(self, f"layer{i}", nn.Sequential(*stage, *tail))
        self.stage_channels = list(net.stage_channels)
        self.norm, self.frozen_stages = norm, frozen_stages
        inside = {id(m) for a in self.modules() if isinstance(a, attention_types)
                  for m in a.modules()}
        own = [(name, m) for name, m in self.named_modules() if id(m) not in inside]
        if norm == "frozen":
            for name, m in own:
                if isinstance(m, nn.BatchNorm2d):
                    _replace(self, name, _frozen(m))
            own = [(name, m) for name, m in self.named_modules() if id(m) not in inside]
        self._eval_norms = [m for _, m in own if isinstance(m, nn.BatchNorm2d)
                            and norm == "eval"]
        frozen_roots = ["conv1", "bn1"] + [f"layer{i}" for i in range(1, frozen_stages + 1)]
        self._frozen = [m for name, m in own if frozen_stages
                        and name.split(".")[0] in frozen_roots]
        for m in self._frozen:
            for p in m.parameters(recurse=False):
                p.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> ResNetBody:
        super().train(mode)
        for m in self._eval_norms + self._frozen:
            m.training = False  # this module only: an attention module inside trains
        return self

    def forward(self, x: Any) -> Any:  # IntermediateLayerGetter runs the children instead
        for child in self.children():
            x = child(x)
        return x


class BodyLayers(IntermediateLayerGetter):
    """torchvision's ``IntermediateLayerGetter`` over a :class:`ResNetBody`: it keeps the
    body's children but not the body, so this ``train()`` keeps the body's eval-mode norms and
    frozen stages in eval mode, as :meth:`ResNetBody.train` does."""

    def __init__(self, body: ResNetBody, return_layers: dict[str, str]) -> None:
        super().__init__(body, return_layers)
        self.held = tuple(body._eval_norms + body._frozen)  # the same module objects
        self.train(body.training)

    def train(self, mode: bool = True) -> BodyLayers:
        super().train(mode)
        for m in self.held:
            m.training = False
        return self


def _frozen(bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    out = FrozenBatchNorm2d(bn.num_features, eps=bn.eps)
    for key in ("weight", "bias", "running_mean", "running_var"):
        getattr(out, key).copy_(getattr(bn, key).detach())
    return out


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def resnet_body(arch: str = "resnet50", attention: str | None = None, *,
                norm: NormMode = "eval", frozen_stages: int = 1,
                bottleneck_stride: Literal["1x1", "3x3"] = "3x3",
                **attention_options: Any) -> ResNetBody:
    """``arch`` (``resnet18`` ... ``resnet101``) with ``attention`` ("ba2m", "se+ba2m", ...;
    its options as keywords) as a detection body."""
    arch_options = {"bottleneck_stride": bottleneck_stride} if arch not in (
        "resnet18", "resnet34") else {}
    net = build_model(arch, form="imagenet", attention=attention, arch_options=arch_options,
                      **attention_options)
    return ResNetBody(net, attention_types(attention), norm, frozen_stages)


def attention_types(attention: str | None) -> tuple[type, ...]:
    """The module classes of ``attention``'s methods ("se+ba2m" -> both): what
    :class:`ResNetBody` leaves to train whatever its norm and frozen stages."""
    names = [] if attention in (None, "", "baseline") else attention.split("+")
    return tuple(f for f in (attention_spec(n).factory for n in names) if isinstance(f, type))


def fpn_backbone(body: ResNetBody, out_channels: int = 256,
                 levels: Sequence[int] = (1, 2, 3, 4),
                 extra: Literal["pool", "p6p7"] = "pool") -> BackboneWithFPN:
    """An FPN over ``body``'s ``layer{levels}``: "pool" adds P6 by max-pooling P5 (Faster and
    Mask R-CNN), "p6p7" adds P6 and P7 by strided convolutions from C5 (RetinaNet, as
    MMDetection v1's ``add_extra_convs``)."""
    channels = [body.stage_channels[i - 1] for i in levels]
    blocks = LastLevelMaxPool() if extra == "pool" else LastLevelP6P7(channels[-1],
                                                                      out_channels)
    layers = {f"layer{i}": str(n) for n, i in enumerate(levels)}
    fpn = BackboneWithFPN(body, layers, channels, out_channels, extra_blocks=blocks)
    fpn.body = BodyLayers(body, layers)  # keeps frozen parts and eval-mode norms in eval mode
    return fpn


def build_detector(detector: str, num_classes: int, arch: str = "resnet50",
                   attention: str | None = None, *, norm: NormMode = "eval",
                   frozen_stages: int = 1, fpn_channels: int = 256,
                   attention_options: dict[str, Any] | None = None,
                   sampler: Literal["random", "ohem"] = "random",
                   cls_loss: Literal["focal", "softmax"] = "focal",
                   rank_by: RankBy = "cls",
                   bottleneck_stride: Literal["1x1", "3x3"] = "3x3",
                   **detector_options: Any) -> nn.Module:
    """torchvision's ``detector`` ("faster_rcnn", "mask_rcnn", "retinanet") over a zoo ResNet
    with ``attention``. ``num_classes`` counts the background (VOC 21, COCO 81 or 91 by
    category id); ``detector_options`` go to the torchvision class (``min_size``,
    ``max_size``, ``box_detections_per_img`` ...), whose defaults are MMDetection v1's RPN,
    RoI and test numbers. ``sampler="ohem"`` (Faster R-CNN, Table IV) replaces the RoI heads'
    random sampler by online hard example mining (``models.detection_heads.OHEMRoIHeads``,
    ranked by ``rank_by``: "cls" as MMDetection v1's ``OHEMSampler``, or "cls+box" as the OHEM
    paper); ``cls_loss="softmax"`` (RetinaNet, Table III) replaces
    the sigmoid focal loss by a cross-entropy over the ``num_classes`` outputs with class 0 as
    the background (``SoftmaxRetinaNet``)."""
    if detector not in DETECTORS:
        raise ModelConfigError(f"unknown detector {detector!r}; choose one of "
                               f"{', '.join(DETECTORS)}")
    if sampler not in ("random", "ohem") or (sampler == "ohem" and detector != "faster_rcnn"):
        raise ModelConfigError(f"sampler {sampler!r} with {detector}: 'random', or 'ohem' "
                               "for faster_rcnn")
    if cls_loss not in ("focal", "softmax") or (cls_loss == "softmax"
                                                and detector != "retinanet"):
        raise ModelConfigError(f"cls_loss {cls_loss!r} with {detector}: 'focal', or "
                               "'softmax' for retinanet")
    body = resnet_body(arch, attention, norm=norm, frozen_stages=frozen_stages,
                       bottleneck_stride=bottleneck_stride, **(attention_options or {}))
    if detector == "retinanet":
        cls = SoftmaxRetinaNet if cls_loss == "softmax" else RetinaNet
        return cls(fpn_backbone(body, fpn_channels, (2, 3, 4), "p6p7"), num_classes,
                   **detector_options)
    cls = FasterRCNN if detector == "faster_rcnn" else MaskRCNN
    model = cls(fpn_backbone(body, fpn_channels), num_classes, **detector_options)
    if sampler == "ohem":
        model.roi_heads = OHEMRoIHeads.from_heads(model.roi_heads, rank_by)
    return model
