"""Registers BA²M: between stages, after each of the four stages of a ResNet (Eq. 15)."""

from models.ba2m import BA2M
from models.registry import register_attention

register_attention("ba2m", position="between", stages=None, inside_scope="all")(BA2M)
