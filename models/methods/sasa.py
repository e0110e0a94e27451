"""SASA: stand-alone local self-attention in place of every bottleneck's 3x3 convolution.

Ramachandran, Parmar, Vaswani, Bello, Levskaya and Shlens, "Stand-Alone Self-Attention in Vision
Models", NeurIPS 2019, https://arxiv.org/abs/1906.05909.

    y_ij = sum_{a,b in N_k(i,j)} softmax_ab(q_ij^T k_ab + q_ij^T r_{a-i,b-j}) v_ab      Eq. 3

Queries, keys and values are 1x1 projections (W_Q, W_K, W_V, d_in -> d_out); each output pixel
attends to the k x k window around it (spatial extent k = 7), in 8 heads that split the channels.
r_{a-i,b-j} concatenates a row-offset and a column-offset embedding, each of half the head's
width. A spatially strided convolution becomes attention followed by 2x2 average pooling with
stride 2 (§3.1). The paper's "full attention" ResNet-50 also replaces the stem by an attention
stem; here the stem stays convolutional ("conv-stem" variant; both are 18.0 M params).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from models.backbones import StagedNet
from models.registry import ModelConfigError, bottleneck_3x3s, register_attention

StrideOn = Literal["layer", "block"]


class LocalSelfAttention(nn.Module):
    """k x k local multi-head self-attention: (N, C_in, H, W) -> (N, C_out, H/s, W/s).

    Args:
        in_channels, out_channels: d_in and d_out.
        stride: s; attention runs at the input resolution, then s x s average pooling.
        kernel_size: k, the spatial extent (paper 7).
        heads: N heads of d_out/N channels each (paper 8).
        scaled: divide the logits by sqrt(d_out/N) (Eq. 3 does not).

    Window positions outside the image are masked out of the softmax (not zero keys).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernel_size: int = 7,
        heads: int = 8,
        scaled: bool = False,
    ) -> None:
        super().__init__()
        if out_channels % heads or (out_channels // heads) % 2 or kernel_size % 2 == 0:
            raise ModelConfigError(
                f"SASA needs an odd kernel and d_out={out_channels} split into {heads} heads of "
                "an even width (half for row offsets, half for column offsets)"
            )
        self.heads, self.kernel_size, self.out_channels = heads, kernel_size, out_channels
        self.dh = out_channels // heads
        self.scale = self.dh**-0.5 if scaled else 1.0
        self.qkv = nn.Conv2d(in_channels, 3 * out_channels, 1, bias=False)
        self.rel_row = nn.Parameter(torch.randn(kernel_size, heads, self.dh // 2) * self.dh**-0.5)
        self.rel_col = nn.Parameter(torch.randn(kernel_size, heads, self.dh // 2) * self.dh**-0.5)
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        nn.init.kaiming_normal_(self.qkv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        nh, dh, k = self.heads, self.dh, self.kernel_size
        q, key, v = self.qkv(x).chunk(3, 1)
        q = (q.permute(0, 2, 3, 1) * self.scale).reshape(n, h * w, nh, 1, dh)
        key, v = _windows(key, k, nh), _windows(v, k, nh)  # N, HW, heads, dh, k*k
        logits = torch.matmul(q, key) + self.relative_logits(q)  # N, HW, heads, 1, k*k
        inside = _windows(torch.ones(1, 1, h, w, device=x.device), k, 1) > 0  # 1, HW, 1, 1, k*k
        attn = torch.softmax(logits.masked_fill(~inside, float("-inf")), dim=-1)
        out = torch.matmul(v, attn.transpose(3, 4))  # N, HW, heads, dh, 1
        return self.pool(out.reshape(n, h, w, self.out_channels).permute(0, 3, 1, 2))

    def relative_logits(self, q: torch.Tensor) -> torch.Tensor:
        """q_ij^T r_{a-i,b-j} for every window offset (a, b): (N, HW, heads, 1, k*k).

        The row half of q meets the k row embeddings and the column half the k column
        embeddings (k * d_out/2 MACs each per pixel); the sum over (a, b) is a broadcast addition.
        Written as matmuls, which fvcore counts exactly (its einsum count is rounded)."""
        half = self.dh // 2
        rows = torch.matmul(q[..., :half], self.rel_row.permute(1, 2, 0))  # N, HW, heads, 1, k
        cols = torch.matmul(q[..., half:], self.rel_col.permute(1, 2, 0))
        return (rows[..., :, None] + cols[..., None, :]).flatten(-2)


def _windows(t: torch.Tensor, k: int, heads: int) -> torch.Tensor:
    """The k x k neighbourhood of every pixel, zero outside: (N, H*W, heads, C/heads, k*k)."""
    n, c, h, w = t.shape
    padded = F.pad(t, (k // 2,) * 4).permute(0, 2, 3, 1)  # N, H+k-1, W+k-1, C
    return padded.unfold(1, k, 1).unfold(2, k, 1).reshape(n, h * w, heads, c // heads, k * k)


def apply_sasa(
    model: StagedNet,
    stages: Sequence[int],
    kernel_size: int = 7,
    heads: int = 8,
    scaled: bool = False,
    stride_on: StrideOn = "layer",
) -> None:
    """Replace the 3x3 convolution (conv2) of every bottleneck in ``stages``; bn2 stays."""
    if stride_on not in ("layer", "block"):
        raise ModelConfigError(f"unknown SASA stride_on {stride_on!r}; choose layer or block")
    for block, conv, stride in bottleneck_3x3s(model, stages, "SASA", stride_on):
        block.conv2 = LocalSelfAttention(
            conv.in_channels, conv.out_channels, stride, kernel_size, heads, scaled
        )


@register_attention("sasa", position="replace", transform=apply_sasa)
def sasa(
    channels: int,
    kernel_size: int = 7,
    heads: int = 8,
    scaled: bool = False,
    stride_on: StrideOn = "layer",
) -> LocalSelfAttention:
    """A stride-1 SASA layer of ``channels``.

    Args:
        channels: d_in = d_out.
        kernel_size: spatial extent k (paper 7).
        heads: attention heads (paper 8).
        scaled: divide logits by sqrt(d_out/heads) (the paper's Eq. 3 does not).
        stride_on: "layer" moves a bottleneck's stride from its first 1x1 to the attention
            layer (attention at the higher resolution, then 2x2 average pooling, §3.1: SASA's
            ResNets stride the spatial layer); "block" leaves it where the backbone has it.
    """
    del stride_on  # a standalone layer has no bottleneck to take the stride from
    return LocalSelfAttention(channels, channels, 1, kernel_size, heads, scaled)
