"""The model zoo: BA²M, the backbones of the paper's tables, and the attention registry."""

from models.ba2m import BA2M
from models.registry import (
    ATTENTIONS,
    ModelConfigError,
    architectures,
    build_backbone,
    build_model,
    register_attention,
)

__all__ = [
    "ATTENTIONS",
    "BA2M",
    "ModelConfigError",
    "architectures",
    "build_backbone",
    "build_model",
    "register_attention",
]
