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
"""

from __future__ import annotations

import os
import re
import sys
from functools import cache
from importlib.metadata import EntryPoint, entry_points

#: Entry-point group of installed plugins' attention methods.
ATTENTION_GROUP = "ba2m_bench.attention"
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


@cache
def entry_point_methods() -> dict[str, tuple[EntryPoint, ...]]:
    """Method name -> the installed entry points declaring it (not loaded; more than one
    is a duplicate the registry refuses when the name is used)."""
    found: dict[str, tuple[EntryPoint, ...]] = {}
    for ep in entry_points(group=ATTENTION_GROUP):
        found[ep.name] = (*found.get(ep.name, ()), ep)
    return found


def registered_now() -> set[str]:
    """Methods registered in this process so far (``--plugin`` modules, loaded built-ins),
    without importing the registry when nothing imported it yet."""
    registry = sys.modules.get("models.registry")
    return set(getattr(registry, "ATTENTIONS", {}))


def method_known(name: str) -> bool:
    """Whether ``name`` names a method the registry can load: built-in, registered, an entry
    point, or a ``"pkg.module:Class"`` (whether that one imports is checked when loaded)."""
    return (name in BUILTIN_METHODS or name in registered_now() or is_object_ref(name)
            or name in entry_point_methods())


def has_architecture(form: str, arch: str | None) -> bool:
    """Whether the zoo builds ``arch`` in ``form``."""
    return (form, arch) in ARCHITECTURES


def env_plugins() -> tuple[str, ...]:
    """The modules ``BA2M_PLUGINS`` names (comma-separated; blanks ignored)."""
    return tuple(p.strip() for p in os.environ.get(PLUGINS_ENV, "").split(",") if p.strip())
