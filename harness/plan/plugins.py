"""Plugins in planning: import ``--plugin`` modules, check the methods a run names, and add
``--add-method`` rows to a suite. Every failure is a :class:`UserError` naming the fix."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Sequence

from harness.errors import UserError
from models.catalogue import PLUGINS_ENV, env_plugins
from models.plugins import all_methods, attention_spec, check_plugin, import_plugins
from models.specs import AttentionSpec, ModelConfigError
from suites.added import AddMethodError, add_methods
from suites.base import Suite


def load_plugins(modules: Sequence[str] = ()) -> tuple[str, ...]:
    """Import ``modules`` and those ``BA2M_PLUGINS`` names; the union is left in
    ``BA2M_PLUGINS`` so that every process this one starts imports them too."""
    wanted = tuple(dict.fromkeys([*env_plugins(), *modules]))
    try:
        import_plugins(wanted)
    except ModelConfigError as exc:
        raise UserError(str(exc)) from None
    if wanted:
        os.environ[PLUGINS_ENV] = ",".join(wanted)
    return wanted


def check_methods(names: Iterable[str]) -> None:
    """Load each method of ``names`` ("se+eca" parts too) and check a plugin's module
    (an ``nn.Module`` from ``channels`` that keeps its input's shape)."""
    for name in dict.fromkeys(n for text in names for n in text.split("+")):
        try:
            attention_spec(name)
            check_plugin(name)
        except ModelConfigError as exc:
            raise UserError(str(exc).splitlines()[0]) from None


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


def method_table() -> list[dict[str, str]]:
    """One record per registered method: name, placement, origin, options with defaults."""
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
