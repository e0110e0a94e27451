"""Attention methods and plugin backbones by name: the registry's tables, and the decorators
that fill them.

``models.registry`` builds models from them; ``models.plugins`` loads methods and backbones
into them on first use (built-ins, entry points, ``pkg.module:Class``). A name registered
twice is refused, naming both places.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.catalogue import ARCHITECTURES, BUILTIN_METHODS, ModelConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ATTENTIONS", "BACKBONES", "FORMS", "AttentionSpec", "BackboneSpec",
           "ModelConfigError", "add_backbone", "add_spec", "register_attention",
           "register_backbone"]

#: The input forms a backbone is built for: CIFAR's 32x32 stem, ImageNet's 224x224 one.
FORMS = ("cifar", "imagenet")


@dataclass(frozen=True)
class AttentionSpec:
    """How a method is made and where its paper puts it."""

    name: str
    factory: Callable[..., nn.Module]
    position: str
    #: None: every stage; or a tuple; or a function of the stage count (e.g. all but the last)
    stages: tuple[int, ...] | Callable[[int], tuple[int, ...]] | None
    inside_scope: str = "all"  # inside: "all" blocks of a stage, or only its "last" block
    #: For methods that rebuild layers instead of inserting a module (SK, AA, SASA):
    #: ``transform(model, stages, **options)`` edits the model in place; position "replace".
    transform: Callable[..., None] | None = None
    #: where it came from: "built-in", "--plugin MODULE", "entry point ...", "object ..."
    origin: str = "built-in"
    #: the module a fresh process imports to register it again (its registering module)
    module: str = ""

    @property
    def builtin(self) -> bool:
        return self.origin == "built-in"


ATTENTIONS: dict[str, AttentionSpec] = {}


def register_attention(
    name: str,
    position: str,
    stages: tuple[int, ...] | Callable[[int], tuple[int, ...]] | None = None,
    inside_scope: str = "all",
    transform: Callable[..., None] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: make an attention module buildable by ``name``.

    The factory is called as ``factory(channels, **options)`` for each insertion point
    ("between" stages or "inside" blocks). A method that rebuilds layers instead gives
    ``position="replace"`` and ``transform(model, stages, **options)``."""

    caller = sys._getframe(1).f_globals.get("__name__", "?")
    origin = "built-in" if BUILTIN_METHODS.get(name) == caller else f"--plugin {caller}"

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        add_spec(AttentionSpec(name, factory, position, stages, inside_scope, transform,
                               origin, caller))
        return factory

    return deco


def add_spec(spec: AttentionSpec) -> None:
    """Register ``spec``; a name another place registered already is refused, naming both
    (the same factory registered again, as by a re-imported module, replaces it)."""
    old = ATTENTIONS.get(spec.name)
    if old is not None and _qualname(old.factory) != _qualname(spec.factory):
        raise ModelConfigError(f"attention method {spec.name!r} is registered twice: by "
                               f"{_where(old)} and by {_where(spec)}; rename one of them")
    builtin = BUILTIN_METHODS.get(spec.name)
    if builtin is not None and spec.module != builtin:
        raise ModelConfigError(f"attention method {spec.name!r} is registered twice: by "
                               f"built-in ({builtin}) and by {_where(spec)}; rename one of them")
    ATTENTIONS[spec.name] = spec


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone from a plugin: ``factory(num_classes, **arch_options)`` makes a
    ``models.backbones.StagedNet`` (stem, ``stages``, an ``after`` slot per stage,
    ``stage_channels``) for ``form``'s images."""

    name: str
    form: str
    factory: Callable[..., nn.Module]
    #: "--plugin MODULE" or "entry point NAME = pkg.module:obj (dist version)"
    origin: str
    #: the module a fresh process imports to register it again
    module: str


#: (form, arch) -> plugin backbone (the built-in ones are ``models.registry``'s own tables).
BACKBONES: dict[tuple[str, str], BackboneSpec] = {}


def register_backbone(
    name: str, form: str = "cifar"
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make a backbone buildable as ``arch=name`` in ``form`` ("cifar" or
    "imagenet"). The decorated class or function is called as ``factory(num_classes,
    **arch_options)`` and returns a ``models.backbones.StagedNet``."""
    caller = sys._getframe(1).f_globals.get("__name__", "?")

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        add_backbone(BackboneSpec(name, form, factory, f"--plugin {caller}", caller))
        return factory

    return deco


def add_backbone(spec: BackboneSpec) -> None:
    """Register ``spec``; a (form, name) built in or registered by another place already is
    refused, naming both (the same factory registered again replaces it)."""
    if spec.form not in FORMS:
        raise ModelConfigError(f"{spec.origin}: backbone {spec.name!r} has form {spec.form!r}; "
                               f"choose one of {', '.join(FORMS)}")
    key = (spec.form, spec.name)
    if key in ARCHITECTURES:
        raise ModelConfigError(f"backbone {spec.name!r} ({spec.form}) is registered twice: by "
                               f"built-in (models.registry) and by {spec.origin}; rename "
                               "the plugin's")
    old = BACKBONES.get(key)
    if old is not None and _qualname(old.factory) != _qualname(spec.factory):
        raise ModelConfigError(f"backbone {spec.name!r} ({spec.form}) is registered twice: by "
                               f"{old.origin} and by {spec.origin}; rename one of them")
    BACKBONES[key] = spec


def _where(spec: AttentionSpec) -> str:
    return f"built-in ({spec.module})" if spec.builtin else spec.origin


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
