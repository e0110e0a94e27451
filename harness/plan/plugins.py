"""Plugins in planning: import ``--plugin`` modules (their methods, backbones and suites),
check the plugins a run's jobs build, and add ``--add-method`` rows to a suite (those a run
asks for, or those its stored jobs show). Every failure is a :class:`UserError` naming the
fix. Importing this module and :func:`load_plugins` need no torch (``ba2m-bench suites``)."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import suites as suite_registry
from harness.errors import UserError
from models.catalogue import (ARCHITECTURES, BUILTIN_METHODS, PLUGINS_ENV, ModelConfigError,
                              entry_point_clash, env_plugins, import_plugins)
from suites.added import AddMethodError, add_methods, baselines, compares_methods
from suites.base import Suite

if TYPE_CHECKING:
    from models.specs import AttentionSpec


def load_plugins(modules: Sequence[str] = ()) -> tuple[str, ...]:
    """Import ``modules`` and those ``BA2M_PLUGINS`` names, adding the suite each defines as
    ``SUITE``; the union is left in ``BA2M_PLUGINS`` so that every process this one starts
    imports them too. An installed entry point that takes a built-in's name is refused."""
    wanted = tuple(dict.fromkeys([*env_plugins(), *modules]))
    try:
        import_plugins(wanted)
        clash = entry_point_clash()
        if clash:
            raise ModelConfigError(clash)
        for module in wanted:
            suite_registry.register_module(sys.modules[module])
    except (ModelConfigError, suite_registry.SuitePluginError) as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    if wanted:
        os.environ[PLUGINS_ENV] = ",".join(wanted)
    return wanted


def check_methods(names: Iterable[str]) -> None:
    """Load each method of ``names`` ("se+eca" parts too) and check a plugin's module
    (an ``nn.Module`` from ``channels`` that keeps its input's shape)."""
    from models.plugins import attention_spec, check_plugin

    for name in dict.fromkeys(n for text in names for n in text.split("+")):
        try:
            attention_spec(name)
            check_plugin(name)
        except ModelConfigError as exc:
            raise UserError(str(exc).splitlines()[0]) from None


def check_plugins(models: Iterable[dict[str, Any]]) -> None:
    """Check every plugin part of jobs' model configs: a backbone that is not built in makes
    a staged network, a method an ``nn.Module`` that keeps its input's shape. A detector's
    model config names no form: its backbone is an ImageNet-form network."""
    from models.plugins import check_backbone

    models = list(models)
    for form, arch in dict.fromkeys((m.get("form", "imagenet"), m.get("arch")) for m in models):
        if (form, arch) in ARCHITECTURES or not isinstance(arch, str):
            continue
        try:
            check_backbone(form, arch)
        except ModelConfigError as exc:
            raise UserError(str(exc).splitlines()[0]) from None
    check_methods(n for m in models for n in (m.get("attention") or "baseline").split("+")
                  if n != "baseline" and n not in BUILTIN_METHODS)


def with_added(suite: Suite, methods: Sequence[str]) -> Suite:
    """``suite`` with the ``--add-method`` rows (each method checked first)."""
    if not methods:
        return suite
    unknown = [m for m in methods if m in ("", "baseline")]
    if unknown:
        raise UserError("--add-method needs an attention method's name or pkg.module:Class; "
                        "see `ba2m-bench methods`")
    check_methods(methods)
    try:
        return add_methods(suite, methods)
    except AddMethodError as exc:
        raise UserError(str(exc)) from None


def stored_added_methods(suite: Suite, configs: Iterable[Any]) -> list[str]:
    """Methods the suite's stored jobs (their configs) trained that no row of it names: the
    ones ``run --add-method`` added, on one of its baselines' backbones."""
    if not compares_methods(suite):
        return []
    named = {r.method for r in suite.rows}
    arches = {r.arch for r in baselines(suite)}
    found = [c["model"].get("attention") for c in configs
             if isinstance(c, dict) and "model" in c and "train" in c
             and not c.get("overrides") and c["model"].get("arch") in arches]
    return sorted({m for m in found if m and m not in named})


def with_stored_added(suite: Suite, configs: Iterable[Any]) -> Suite:
    """``suite`` with a row for each method :func:`stored_added_methods` finds (as ``run
    --add-method`` added them): what ``report`` and ``count`` show without ``--add-method``."""
    try:
        return add_methods(suite, stored_added_methods(suite, configs))
    except AddMethodError:
        return suite


def method_table() -> list[dict[str, str]]:
    """One record per registered method: name, placement, origin, options with defaults."""
    from models.plugins import all_methods

    try:
        specs = all_methods()
    except ModelConfigError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    return [{"method": s.name, "placement": s.position, "stages": _stages(s.stages),
             "origin": s.origin, "options": options_text(s)} for s in specs]


def _stages(stages: object) -> str:
    if stages is None:
        return "all"
    return "all but the last" if callable(stages) else ",".join(map(str, stages))  # type: ignore[call-overload]


def options_text(spec: AttentionSpec) -> str:
    """``reduction=16, groups=1``: the constructor options after ``channels``."""
    build = spec.transform or spec.factory
    try:
        params = list(inspect.signature(build).parameters.values())
    except (TypeError, ValueError):
        return ""
    skip = 3 if spec.transform is not None else 1  # transform(model, stages, ...)
    return ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}"
                     for p in params[skip:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
