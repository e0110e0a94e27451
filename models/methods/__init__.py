"""Attention methods, one module each. Importing this package imports every module in it, and
each registers its method by name (``models.registry.register_attention``)."""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
