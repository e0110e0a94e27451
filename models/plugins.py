"""Attention methods and backbones from outside the zoo: loaded, checked, and recorded so
that every process builds the same model.

A plugin is named three ways (docs/extending.md): an entry point in
``models.catalogue.ATTENTION_GROUP``, a module imported with ``--plugin`` / ``BA2M_PLUGINS``
that calls ``register_attention``, or ``"pkg.module:Class"`` itself. An entry point's or a
reference's object says where it goes with optional class attributes, as
``register_attention``'s arguments: ``position`` ("inside" by default: every residual block,
like SE), ``stages`` (None: every stage) and ``inside_scope`` ("all").

A job that builds a plugin records :func:`plugin_record` in its model config (so in its
hash): the method's name, the module to import, its object, its distribution's version and a
hash of its source. A worker, data-parallel rank or Ray task re-imports the plugin from that
record (:func:`ensure_plugins`) and refuses to build it when the plugin changed since the job
was planned: a changed plugin makes new jobs, never an old result taken for a new one.

A backbone is named by an entry point in ``models.catalogue.BACKBONE_GROUP`` (its object's
optional ``form`` attribute: "cifar" by default) or by a ``--plugin`` module that calls
``register_backbone``; its record has ``kind: "backbone"`` and its ``form``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from collections.abc import Iterable
from functools import cache
from importlib.metadata import EntryPoint, packages_distributions, version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.catalogue import (ARCHITECTURES, BUILTIN_METHODS, entry_point_backbones,
                              entry_point_methods, entry_point_source, import_plugin,
                              import_plugins, import_root, is_object_ref)
from models.specs import (ATTENTIONS, BACKBONES, FORMS, AttentionSpec, BackboneSpec,
                          ModelConfigError, add_backbone, add_spec)

__all__ = ["all_methods", "attention_spec", "backbone_spec", "check_backbone", "check_plugin",
           "ensure_plugins", "import_plugin", "import_plugins", "import_root", "load_method",
           "plugin_record", "plugin_records", "spec_from_object"]

#: A plugin's input in the shape check: batch 2, 16 channels, 8x8.
PROBE_SHAPE = (2, 16, 8, 8)


def entry_point_names() -> tuple[str, ...]:
    """The method names installed packages declare as entry points."""
    return tuple(sorted(entry_point_methods()))


def load_method(name: str) -> None:
    """Register the plugin method ``name`` from its ``"pkg.module:Class"`` reference or its
    entry point (nothing when neither names it: the caller says it is unknown)."""
    if is_object_ref(name):
        module, _, attr = name.partition(":")
        import_plugin(module)
        obj = _attribute(sys.modules[module], attr, f"{name!r}: {module} has no {attr!r}; "
                         "check the spelling of pkg.module:Class")
        add_spec(spec_from_object(name, obj, f"object {name}", module))
        return
    found = entry_point_methods().get(name, ())
    if len(found) > 1:
        places = " and ".join(f"entry point {ep.value} ({_dist_name(ep)})" for ep in found)
        raise ModelConfigError(f"attention method {name!r} is registered twice: by {places}; "
                               "uninstall or rename one of them")
    if found:
        add_spec(_from_entry_point(found[0]))


def _from_entry_point(ep: EntryPoint) -> AttentionSpec:
    module, _, attr = ep.value.partition(":")
    import_plugin(module)
    where = f"entry point {ep.name} = {ep.value} ({_dist_name(ep)})"
    obj = _attribute(sys.modules[module], attr, f"{where} names a missing object: {module} "
                     f"has no {attr!r}; fix the entry point in the package's pyproject.toml")
    return spec_from_object(ep.name, obj, where, module)


def _attribute(module: Any, dotted: str, missing: str) -> Any:
    obj = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            raise ModelConfigError(missing)
        obj = getattr(obj, part)
    return obj


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "no distribution"


# ---------------------------------------------------------------------------- backbones
def backbone_spec(form: str, arch: str) -> BackboneSpec | None:
    """The plugin backbone ``arch`` in ``form``: registered by a ``--plugin`` module, or loaded
    from its entry point when first asked for; None when no plugin declares ``arch``."""
    if (form, arch) in BACKBONES:
        return BACKBONES[(form, arch)]
    found = entry_point_backbones().get(arch, ())
    if len(found) > 1:
        places = " and ".join(entry_point_source(ep) for ep in found)
        raise ModelConfigError(f"backbone {arch!r} is registered twice: by {places}; "
                               "uninstall or rename one of them")
    if not found:
        return None
    ep = found[0]
    module, _, attr = ep.value.partition(":")
    import_plugin(module)
    where = entry_point_source(ep)
    obj = _attribute(sys.modules[module], attr, f"{where} names a missing object: {module} "
                     f"has no {attr!r}; fix the entry point in the package's pyproject.toml")
    if not callable(obj):
        raise ModelConfigError(f"{where}: a {type(obj).__name__}, which is not a backbone "
                               "class or factory; point it at a StagedNet class or function")
    spec = BackboneSpec(arch, getattr(obj, "form", "cifar"), obj, where, module)
    add_backbone(spec)
    if spec.form != form:
        raise ModelConfigError(f"{where}: backbone {arch!r} is built for {spec.form} images "
                               f"(its form), not {form}; use it in a {spec.form} suite or give "
                               "it form = " + repr(form))
    return spec


def check_backbone(form: str, arch: str) -> None:
    """Raise :class:`ModelConfigError` unless the plugin backbone ``arch`` makes a staged
    network (``stages``, an ``after`` slot per stage, ``stage_channels``): built once on the
    meta device (no memory). A built-in backbone passes."""
    if (form, arch) in ARCHITECTURES:
        return
    spec = backbone_spec(form, arch)
    if spec is None:
        raise ModelConfigError(f"unknown {form} architecture {arch!r}")
    try:
        with torch.device("meta"):
            model = spec.factory(10)
    except TypeError as exc:
        raise ModelConfigError(f"{spec.origin}: does not build from num_classes ({exc}); give "
                               "it the class count as first argument") from None
    n = len(getattr(model, "stages", ()) or ())
    if not isinstance(model, nn.Module) or not n \
            or len(getattr(model, "after", ())) != n \
            or len(getattr(model, "stage_channels", ())) != n:
        raise ModelConfigError(f"{spec.origin}: made a {type(model).__name__} without stages, "
                               "an after slot per stage and stage_channels; subclass "
                               "models.backbones.StagedNet")


def backbone_record(spec: BackboneSpec) -> dict[str, Any]:
    """What a job records of a plugin backbone (as :func:`plugin_record`, with its kind and
    form)."""
    return {"kind": "backbone", "name": spec.name, "form": spec.form,
            **_identity(spec.factory, spec.module)}


def spec_from_object(name: str, obj: Any, origin: str, module: str) -> AttentionSpec:
    """A method made by ``obj`` (a class or factory taking ``channels``), placed as its
    optional ``position`` / ``stages`` / ``inside_scope`` attributes say."""
    if not callable(obj):
        raise ModelConfigError(f"{origin}: a {type(obj).__name__}, which is not an nn.Module "
                               "class or factory; point it at the module's class")
    return AttentionSpec(name, obj, getattr(obj, "position", "inside"),
                         getattr(obj, "stages", None), getattr(obj, "inside_scope", "all"),
                         getattr(obj, "transform", None), origin, module)


# ------------------------------------------------------------------------------ lookup
def attention_spec(name: str) -> AttentionSpec:
    """The method ``name``, loaded when first asked for: a built-in's module, a plugin's
    entry point or ``"pkg.module:Class"`` reference (see ``models.plugins``)."""
    if name not in ATTENTIONS:
        if name in BUILTIN_METHODS:
            importlib.import_module(BUILTIN_METHODS[name])
        else:
            load_method(name)
    if name not in ATTENTIONS:
        known = ", ".join(sorted({*BUILTIN_METHODS, *ATTENTIONS}))
        raise ModelConfigError(f"unknown attention method {name!r}; choose one of {known}, "
                               "an installed plugin's name or pkg.module:Class")
    return ATTENTIONS[name]


def all_methods() -> list[AttentionSpec]:
    """Every method: the built-ins (all loaded), entry points and registered plugins."""
    for name in (*BUILTIN_METHODS, *entry_point_names()):
        attention_spec(name)
    return [ATTENTIONS[n] for n in sorted(ATTENTIONS)]


# ------------------------------------------------------------------------------ checks
def check_plugin(name: str) -> None:
    """Raise :class:`ModelConfigError` unless the plugin ``name`` makes an ``nn.Module`` from
    ``channels`` that keeps its input's shape. A forward that raises is left to the job
    (which FAILS with the plugin's message)."""
    spec = attention_spec(name)
    if spec.builtin or spec.transform is not None:
        return
    try:
        inspect.signature(spec.factory).bind(PROBE_SHAPE[1])
    except TypeError as exc:
        raise ModelConfigError(f"{spec.origin}: does not accept channels ({exc}); give its "
                               "constructor the channel count as first argument") from None
    except ValueError:
        pass  # no signature to read (a builtin): building it says
    module = spec.factory(PROBE_SHAPE[1])
    if not isinstance(module, nn.Module):
        raise ModelConfigError(f"{spec.origin}: made a {type(module).__name__}, which is not "
                               "an nn.Module; point it at an nn.Module class")
    x = torch.zeros(PROBE_SHAPE)
    try:
        with torch.no_grad():
            out = module.train()(x)
    except Exception:  # noqa: BLE001 - raised again in the job, which records it
        return
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelConfigError(f"{spec.origin}: changes the tensor's shape ({tuple(x.shape)} "
                               f"-> {got}); an attention module must return its input's shape")


# ----------------------------------------------------------------------------- records
def plugin_records(attention: str | None, arch: str | None = None,
                   form: str | None = None) -> list[dict[str, Any]]:
    """The record of ``arch``'s backbone when a plugin's (first), then of every method of
    ``attention`` ("se+eca") that is not built in."""
    out = []
    if arch is not None and form in FORMS and (form, arch) not in ARCHITECTURES:
        spec = backbone_spec(form, arch)
        if spec is not None:
            out.append(backbone_record(spec))
    if not attention or attention == "baseline":
        return out
    specs = [attention_spec(n) for n in attention.split("+")]
    return out + [plugin_record(spec) for spec in specs if not spec.builtin]


def plugin_record(spec: AttentionSpec) -> dict[str, Any]:
    """What a job records of a plugin method: name, module, object, version, source hash."""
    return {"name": spec.name, **_identity(spec.factory, spec.module)}


def _identity(factory: Any, module: str) -> dict[str, Any]:
    """Where a plugin part comes from: the module to import, the object that builds it, its
    distribution's version and a hash of the source of both modules."""
    obj = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}"
    modules = tuple(dict.fromkeys([module, obj.partition(":")[0]]))
    return {"module": module, "object": obj, "version": _version(module),
            "source": _source_hash(modules)}


def ensure_plugins(records: Iterable[dict[str, Any]]) -> None:
    """Load each recorded plugin in this process (a worker, rank or Ray task) and refuse one
    that differs from the record (another version or source than the job was planned with)."""
    for record in records:
        name = record["name"]
        if record.get("kind") == "backbone":
            form = record["form"]
            if (form, name) not in BACKBONES and name not in entry_point_backbones():
                import_plugin(record["module"])
            spec = backbone_spec(form, name)
            if spec is None:
                raise ModelConfigError(f"plugin backbone {name!r}: module {record['module']} "
                                       "imported but registers no such backbone")
            here = backbone_record(spec)
        else:
            if name not in ATTENTIONS and not is_object_ref(name) \
                    and name not in entry_point_methods():
                import_plugin(record["module"])
            here = plugin_record(attention_spec(name))
        if (here["version"], here["source"]) != (record.get("version"), record.get("source")):
            raise ModelConfigError(
                f"plugin {name!r} changed since this job was planned (planned: version "
                f"{record.get('version')}, source {record.get('source')}; here: version "
                f"{here['version']}, source {here['source']}); plan the jobs again with "
                "`ba2m-bench run` (the changed plugin makes new jobs)")


def _version(module: str) -> str | None:
    dists = distributions().get(module.partition(".")[0])
    if not dists:
        return None
    try:
        return f"{dists[0]} {version(dists[0])}"
    except Exception:  # noqa: BLE001 - metadata of a broken install: no version
        return None


@cache
def distributions() -> dict[str, list[str]]:
    """Top-level module -> the installed distributions that provide it (read once)."""
    return packages_distributions()


def _source_hash(modules: tuple[str, ...]) -> str:
    """sha256 (16 hex digits) of the source files of ``modules``."""
    h = hashlib.sha256()
    for name in modules:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and Path(path).is_file():
            h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]
