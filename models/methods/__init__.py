"""Attention methods, one module each; importing this package registers them by name."""

from models.methods import ba2m  # noqa: F401
