"""The model zoo: BA²M, the backbones of the paper's tables, and the attention registry.

Its names are imported when first used (``from models import build_model``), so that
``models.catalogue`` (the zoo's names, without torch) imports without the zoo itself.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> module that defines it.
_EXPORTS = {
    "BA2M": "models.ba2m",
    "ATTENTIONS": "models.registry",
    "ModelConfigError": "models.registry",
    "architectures": "models.registry",
    "build_backbone": "models.registry",
    "build_model": "models.registry",
    "register_attention": "models.registry",
    "register_backbone": "models.registry",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
