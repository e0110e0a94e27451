"""Model registry: backbones and attention methods by name, and the one builder.

Attention methods register themselves with :func:`register_attention` next to their class, so
a backbone never imports a method and a user can add one without editing this file::

    @register_attention("ba2m", position="between", stages=(1, 2, 3, 4))
    class BA2M(nn.Module): ...

A method is loaded when first named (:func:`attention_spec`): a built-in by importing its
own module (``models.catalogue.BUILTIN_METHODS``), a plugin from its entry point, its
``"pkg.module:Class"`` reference, or the ``--plugin`` module that registered it
(``models.plugins``). A name registered twice is refused, naming both places.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from typing import Any

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from models.backbones import (
    CIFAR_OPTION_A,
    CIFAR_PREACT,
    CIFAR_RESNETS,
    IMAGENET_RESNETS,
    OPTION_A_WIDTHS,
    RESIDUAL_TAIL,
    StagedNet,
    option_a_resnet,
    resnet,
)
from models.lightweight import CIFAR_LIGHTWEIGHT
from models.plugins import all_methods, attention_spec, backbone_spec
from models.specs import (ATTENTIONS, BACKBONES, FORMS, AttentionSpec, ModelConfigError,
                          register_attention, register_backbone)

__all__ = ["ATTENTIONS", "AttentionSpec", "ModelConfigError", "all_methods", "architectures",
           "attention_spec", "build_backbone", "build_model", "place", "register_attention",
           "register_backbone", "resolved_options", "size_dependent"]
POSITIONS = ("between", "inside", "replace")
DEFAULT_CLASSES = {"cifar": 100, "imagenet": 1000}
INPUT_SIZE = {"cifar": 32, "imagenet": 224}


def architectures(form: str | None = None) -> list[tuple[str, str]]:
    """Every (form, arch) the zoo can build: the built-in backbones, then the plugin ones
    registered so far."""
    pairs = [("imagenet", a) for a in IMAGENET_RESNETS]
    pairs += [("cifar", a) for a in (*CIFAR_RESNETS, *CIFAR_PREACT, *CIFAR_LIGHTWEIGHT)]
    pairs += [("cifar", a) for a in CIFAR_OPTION_A]
    pairs += [p for p in BACKBONES if p not in pairs]
    return [p for p in pairs if form is None or p[0] == form]


def default_stages(spec: AttentionSpec, n: int) -> tuple[int, ...]:
    """The stages a method goes to on an ``n``-stage network when none are chosen."""
    if spec.stages is None:
        return tuple(range(1, n + 1))
    return tuple(spec.stages(n)) if callable(spec.stages) else tuple(spec.stages)


def num_stages(arch: str, form: str) -> int:
    """How many stages ``arch`` has in ``form``."""
    spec = (IMAGENET_RESNETS if form == "imagenet" else CIFAR_RESNETS).get(arch)
    if spec is not None:
        return len(spec.depths)
    if arch in CIFAR_LIGHTWEIGHT:
        return len(CIFAR_LIGHTWEIGHT[arch](10).stages)
    if arch in CIFAR_OPTION_A:
        return len(OPTION_A_WIDTHS)
    if form in FORMS and backbone_spec(form, arch) is not None:
        return _plugin_stages(form, arch)
    return 3


@cache
def _plugin_stages(form: str, arch: str) -> int:
    """A plugin backbone's stage count: built once on the meta device (no memory)."""
    spec = backbone_spec(form, arch)
    with torch.device("meta"):
        return len(spec.factory(DEFAULT_CLASSES[form]).stages)  # type: ignore[union-attr]


def resolved_options(
    arch: str, form: str, attention: str | None, options: dict[str, Any]
) -> dict[str, Any]:
    """``options`` completed with the method's defaults and placement, so that equal models
    have equal option dicts (and a stored config names every option in force)."""
    if not attention:
        return dict(options)
    spec = attention_spec(attention.split("+")[-1])
    params = inspect.signature(spec.factory).parameters
    out = {k: p.default for k, p in list(params.items())[1:] if p.default is not p.empty}
    out |= {k: v for k, v in options.items()}
    out["stages"] = sorted(out.get("stages") or default_stages(spec, num_stages(arch, form)))
    out["position"] = out.get("position") or spec.position
    if out["position"] == "inside":
        out["inside_scope"] = out.get("inside_scope") or spec.inside_scope
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def build_backbone(arch: str, form: str, num_classes: int, **arch_options: Any) -> StagedNet:
    """The plain network ``arch`` in ``form`` ('cifar' or 'imagenet')."""
    if form not in FORMS:
        raise ModelConfigError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    if form == "imagenet" and arch in IMAGENET_RESNETS:
        return resnet(IMAGENET_RESNETS[arch], form, num_classes, **arch_options)
    if form == "cifar" and arch in CIFAR_RESNETS:
        return resnet(CIFAR_RESNETS[arch], form, num_classes, **arch_options)
    if form == "cifar" and arch in CIFAR_OPTION_A:
        if arch_options:
            raise ModelConfigError(f"{arch} takes no architecture options, got {arch_options}")
        return option_a_resnet(CIFAR_OPTION_A[arch], num_classes)
    builders = CIFAR_PREACT | CIFAR_LIGHTWEIGHT
    if form == "cifar" and arch in builders:
        if arch_options:
            raise ModelConfigError(f"{arch} takes no architecture options, got {arch_options}")
        return builders[arch](num_classes)
    plugin = backbone_spec(form, arch)
    if plugin is not None:
        return plugin.factory(num_classes, **arch_options)
    known = ", ".join(a for f, a in architectures(form))
    raise ModelConfigError(f"unknown {form} architecture {arch!r}; choose one of {known} or a "
                           "plugin's (docs/extending.md)")


def build_model(
    arch: str,
    *,
    form: str = "imagenet",
    num_classes: int | None = None,
    attention: str | None = None,
    stages: Iterable[int] | None = None,
    position: str | None = None,
    inside_scope: str | None = None,
    arch_options: dict[str, Any] | None = None,
    input_size: int | None = None,
    **options: Any,
) -> StagedNet:
    """Build ``arch`` with an attention method placed as its paper (or the caller) says.

    Args:
        arch: backbone name, e.g. "resnet50" (see :func:`architectures`).
        form: "cifar" (32x32 stem) or "imagenet" (224x224 stem).
        num_classes: classifier width; 100 for CIFAR, 1000 for ImageNet by default.
        attention: None, a method name ("ba2m"), or several joined by "+" ("se+ba2m").
        stages: 1-based stages that receive the method (default: the method's own).
        position: "between" stages (Fig. 4d) or "inside" blocks (Fig. 4c).
        inside_scope: with position "inside", every block of a stage ("all") or its "last".
        arch_options: backbone variant options, e.g. ``{"bottleneck_stride": "3x3"}``.
        input_size: the image size (square) the model will see. Methods whose modules depend on
            the feature-map size (:func:`size_dependent`: GE-θ's gather kernel, AA's relative
            embeddings) probe the model at it; None: the paper's (224 ImageNet, 32 CIFAR).
            Other models are the same at every size.
        options: constructor options of the attention module.

    In a "+" combination the placement arguments and ``options`` go to the last method named
    (the module under study, as in "se+ba2m"); the others keep their own papers' placement.
    ``input_size`` goes to every method of the combination that depends on it.
    """
    if form not in FORMS:
        raise ModelConfigError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    classes = num_classes or DEFAULT_CLASSES[form]
    model = build_backbone(arch, form, classes, **(arch_options or {}))
    if attention is None or attention in ("", "baseline"):
        if options or stages is not None or position is not None:
            raise ModelConfigError("attention options were given but no attention method")
        return model
    names = attention.split("+")
    specs = [attention_spec(name) for name in names]
    sized = lambda spec: {"input_size": input_size} if (  # noqa: E731
        input_size is not None and _takes_input_size(spec)) else {}
    for spec in specs[:-1]:
        place(model, spec, options=sized(spec))
    place(model, specs[-1], stages, position, inside_scope, options | sized(specs[-1]))
    return model


def size_dependent(attention: str | None) -> bool:
    """Whether a model with ``attention`` depends on its input size (a method of it probes
    feature-map sizes when built, taking an ``input_size`` option): such a model must be built
    for the images it will see, and its config records the size (``options.input_size``)."""
    if attention is None or attention in ("", "baseline"):
        return False
    return any(_takes_input_size(attention_spec(name)) for name in attention.split("+"))


def _takes_input_size(spec: AttentionSpec) -> bool:
    build = spec.transform or spec.factory
    return "input_size" in inspect.signature(build).parameters


def place(
    model: StagedNet,
    spec: AttentionSpec,
    stages: Iterable[int] | None = None,
    position: str | None = None,
    inside_scope: str | None = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Insert ``spec``'s module into ``model`` at the chosen stages and position."""
    n = len(model.stages)
    chosen = tuple(stages) if stages is not None else default_stages(spec, n)
    if not chosen or len(set(chosen)) != len(chosen) or any(not 1 <= s <= n for s in chosen):
        raise ModelConfigError(
            f"stages {list(chosen)} are not a non-empty set of distinct stages in 1..{n}"
        )
    position = position or spec.position
    if position not in POSITIONS or (position == "replace") != (spec.transform is not None):
        raise ModelConfigError(
            f"position {position!r} does not fit {spec.name}; choose between or inside"
            if spec.transform is None else f"{spec.name} only replaces layers (position replace)"
        )
    if spec.transform is not None:
        spec.transform(model, sorted(chosen), **(options or {}))
        return
    scope = inside_scope or spec.inside_scope
    if scope not in ("all", "last"):
        raise ModelConfigError(f"unknown inside_scope {scope!r}; choose all or last")
    make = lambda width: spec.factory(width, **(options or {}))  # noqa: E731
    for i in (s - 1 for s in sorted(chosen)):
        if position == "between":
            model.after[i] = _chain(model.after[i], make(model.stage_channels[i]))
            continue
        blocks = list(model.stages[i])
        for block in blocks[-1:] if scope == "last" else blocks:
            if type(block) not in RESIDUAL_TAIL:
                raise ModelConfigError(
                    f"{spec.name} cannot go inside {type(block).__name__} blocks (no residual "
                    "branch known); use position between"
                )
            tail = RESIDUAL_TAIL[type(block)]
            layer = getattr(block, tail)
            setattr(block, tail, _chain(layer, make(_out_channels(layer))))


def bottleneck_3x3s(
    model: StagedNet, stages: Sequence[int], method: str, stride_on: str
) -> Iterator[tuple[Bottleneck, nn.Conv2d, int]]:
    """Each bottleneck of ``stages`` with its 3x3 convolution and the stride a replacement of
    that convolution takes: with ``stride_on="layer"`` a stride sitting on the first 1x1 moves
    to the replacement (as SK's and SASA's own ResNets have it); with "block" it stays."""
    for i in stages:
        for block in model.stages[i - 1]:
            if not isinstance(block, Bottleneck):
                raise ModelConfigError(
                    f"{method} replaces the 3x3 of bottleneck blocks; stage {i} has "
                    f"{type(block).__name__} (choose a ResNet-50/101 or ResNeXt backbone)"
                )
            stride = block.conv2.stride[0]
            if stride_on == "layer" and block.conv1.stride[0] > 1:
                stride, block.conv1.stride = block.conv1.stride[0], (1, 1)
            yield block, block.conv2, stride


def _chain(first: nn.Module, second: nn.Module) -> nn.Module:
    return second if isinstance(first, nn.Identity) else nn.Sequential(first, second)


def _out_channels(layer: nn.Module) -> int:
    if isinstance(layer, nn.Sequential):
        return _out_channels(layer[0])
    if isinstance(layer, nn.BatchNorm2d):
        return layer.num_features
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    raise ModelConfigError(f"cannot tell the width of {type(layer).__name__}")

