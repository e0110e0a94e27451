"""The zoo's names without the zoo: what can be built, found without importing torch.

Planning a suite, counting its jobs (``ba2m-bench suites``) and checking that a row can run
need only names: every built-in backbone (with its stage count), every built-in attention
method (with the module that registers it, imported only when the method is built) and the
names plugins declare as entry points (read from installed packages' metadata, never loaded
here). ``models.registry`` builds; tests/test_plugins.py checks that this catalogue and the
registry agree, so neither can go stale.

Plugins name a method in three ways (docs/extending.md): an entry point in
:data:`ATTENTION_GROUP`, a module imported with ``--plugin`` / ``BA2M_PLUGINS`` (which
registers with ``models.registry.register_attention``), or ``"pkg.module:Class"`` itself.
Backbones come the same ways but the last (:data:`BACKBONE_GROUP`, ``register_backbone``),
and suites from :data:`SUITE_GROUP` or a ``--plugin`` module that defines ``SUITE``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

#: Entry-point group of installed plugins' attention methods.
ATTENTION_GROUP = "ba2m_bench.attention"
#: Entry-point group of installed plugins' backbones (the name is the architecture's).
BACKBONE_GROUP = "ba2m_bench.backbones"
#: Entry-point group of installed plugins' suites (the name is the suite's).
SUITE_GROUP = "ba2m_bench.suites"
#: Modules to import before anything is planned, comma-separated (as ``--plugin``).
PLUGINS_ENV = "BA2M_PLUGINS"

#: (form, arch) -> number of stages: every backbone ``models.registry.build_backbone`` builds.
ARCHITECTURES: dict[tuple[str, str], int] = {
    **{("imagenet", a): 4 for a in ("resnet18", "resnet34", "resnet50", "resnet101",
                                   "wrn18x1.5", "wrn18x2", "resnext50_32x4d",
                                   "resnext101_32x4d")},
    **{("cifar", a): 4 for a in ("resnet50", "resnet101")},
    **{("cifar", a): 3 for a in ("resnet20", "resnext29_8x64d",
                                "preresnet110", "wrn28_8", "wrn28_10", "densenet100_bc",
                                "shufflenetv2", "resnet20a", "resnet32a", "resnet44a",
                                "resnet56a", "resnet110a")},
    **{("cifar", a): 5 for a in ("mobilenetv2", "efficientnet_b0")},
}

#: Built-in attention method -> the module whose import registers it.
BUILTIN_METHODS: dict[str, str] = {
    "ba2m": "models.methods.ba2m",
    **{m: f"models.methods.{m}" for m in ("aa", "bam", "cbam", "gc", "ge", "sasa", "se",
                                          "sge", "sk", "srm")},
}

#: ``"pkg.module:Class"``: a method named by where it lives.
OBJECT_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def is_object_ref(name: str) -> bool:
    """Whether ``name`` is a ``"pkg.module:Class"`` reference rather than a method name."""
    return OBJECT_REF.fullmatch(name) is not None


class ModelConfigError(ValueError):
    """A model request that cannot be built (unknown name, bad option, broken plugin)."""


def group_entry_points(group: str) -> dict[str, tuple[EntryPoint, ...]]:
    """Name -> the installed entry points of ``group`` declaring it (read from the packages'
    metadata, not loaded; more than one is a duplicate refused when the name is used)."""
    found: dict[str, tuple[EntryPoint, ...]] = {}
    for ep in entry_points(group=group):
        found[ep.name] = (*found.get(ep.name, ()), ep)
    return found


@cache
def entry_point_methods() -> dict[str, tuple[EntryPoint, ...]]:
    """Method name -> the installed entry points declaring it (see :func:`group_entry_points`)."""
    return group_entry_points(ATTENTION_GROUP)


@cache
def entry_point_backbones() -> dict[str, tuple[EntryPoint, ...]]:
    """Architecture name -> the installed entry points declaring it."""
    return group_entry_points(BACKBONE_GROUP)


def entry_point_source(ep: EntryPoint) -> str:
    """How an entry point is named in messages: ``entry point eca = eca_attention:ECA
    (eca-attention 0.1.0)``."""
    dist = getattr(ep, "dist", None)
    where = f"{dist.name} {dist.version}" if dist is not None else "no distribution"
    return f"entry point {ep.name} = {ep.value} ({where})"


def entry_point_clash() -> str | None:
    """The first entry point that declares a built-in method's or backbone's name (a name
    registered twice), as a message naming both; None when there is none."""
    builtin_arches = {a for _, a in ARCHITECTURES}
    for found, builtin, what in ((entry_point_methods(), set(BUILTIN_METHODS),
                                  "attention method"),
                                 (entry_point_backbones(), builtin_arches, "backbone")):
        for name in sorted(set(found) & builtin):
            return (f"{what} {name!r} is registered twice: by built-in and by "
                    f"{entry_point_source(found[name][0])}; uninstall or rename the plugin's")
    return None


def registered_now() -> set[str]:
    """Methods registered in this process so far (``--plugin`` modules, loaded built-ins),
    without importing the registry when nothing imported it yet."""
    specs = sys.modules.get("models.specs")
    return set(getattr(specs, "ATTENTIONS", {}))


def backbones_registered_now() -> set[tuple[str, str]]:
    """(form, arch) of the plugin backbones registered in this process so far."""
    specs = sys.modules.get("models.specs")
    return set(getattr(specs, "BACKBONES", {}))


def method_known(name: str) -> bool:
    """Whether ``name`` names a method the registry can load: built-in, registered, an entry
    point, or a ``"pkg.module:Class"`` (whether that one imports is checked when loaded)."""
    return (name in BUILTIN_METHODS or name in registered_now() or is_object_ref(name)
            or name in entry_point_methods())


def has_architecture(form: str, arch: str | None) -> bool:
    """Whether the zoo builds ``arch`` in ``form``: built in, registered by a ``--plugin``
    module, or an entry point's (whose form is checked when it is loaded)."""
    return ((form, arch) in ARCHITECTURES or (form, arch) in backbones_registered_now()
            or arch in entry_point_backbones())


def env_plugins() -> tuple[str, ...]:
    """The modules ``BA2M_PLUGINS`` names (comma-separated; blanks ignored)."""
    return tuple(p.strip() for p in os.environ.get(PLUGINS_ENV, "").split(",") if p.strip())


# ------------------------------------------------------------------ importing plugins
def import_plugin(module: str) -> None:
    """Import a ``--plugin`` module (its ``register_*`` calls register what it declares)."""
    if module in sys.modules:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelConfigError(f"plugin module {module!r} does not import ({first}); install "
                               "it or put its folder on PYTHONPATH") from None


def import_plugins(modules: tuple[str, ...] | list[str]) -> None:
    """Import every module of ``modules`` (see :func:`import_plugin`)."""
    for module in modules:
        import_plugin(module)


def import_root(module: str) -> str | None:
    """The ``sys.path`` folder ``module`` was imported from (None: not imported, or not from
    a file)."""
    top = sys.modules.get(module.partition(".")[0])
    path = getattr(top, "__file__", None)
    if not path:
        return None
    file = Path(path).resolve()
    return str(file.parents[1] if file.name == "__init__.py" else file.parent)
