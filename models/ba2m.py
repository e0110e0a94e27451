"""BA²M: the batch aware attention module, whole in one file.

Cheng, Li, Wu and Ngan, "BA²M: A Batch Aware Attention Module for Image Classification"
(§III-B). For each sample x_i a sample-wise attention representation (SAR) is built from three
parallel branches,

    A_C  = BN(FC1(FC0(GAP(x))))                     channel attention, Eq. 6
    A_LS = BN(g2_1x1(g1_3x3(g0_1x1(x))))            local spatial attention, Eq. 7
    A_GS = BN(GAP(softmax(f(x) g(x)^T) h(x)))       global spatial attention, Eq. 8
    A    = mean_C(max(A_C, GAP(A_LS), A_GS))        combination, Eq. 9

then the SARs of the batch go through a softmax over the batch (Eq. 11) and every sample is
rescaled by its weight. Eq. 13 prints x̂_i = w_i · x_i; trained on real images that reading
collapses onto a few samples, so the default is x̂_i = x_i + w_i · x_i (``excite``).

Every reading the paper leaves open is a constructor option; the default is the paper-faithful
reading except where the evidence says otherwise (``excite``), and ``docs/ba2m-options.md``
quotes the sentence each option rests on and the measurements behind each departure.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from models.pooled_attention import pooled_attention

BRANCHES = ("ca", "lsa", "gsa")
Grouping = Literal["none", "reduction"]
LsaGrouping = Literal["pointwise", "none", "all"]
GsaOut = Literal["pool", "repeat", "project"]
BatchScale = Literal["none", "n"]
EvalMode = Literal["batch", "identity"]
BatchScope = Literal["local", "global"]
GsaImpl = Literal["pooled", "sdpa", "matmul"]
Activation = Literal["relu", "none"]
SarNorm = Literal["none", "standardize"]
BranchNorm = Literal["bn", "none"]
WidthRound = Literal["floor", "ceil"]
Excite = Literal["scale", "residual"]


class BA2MConfigError(ValueError):
    """An option combination that cannot build a BA²M module."""


def reduced_width(
    channels: int, reduction: int, min_channels: int, rounding: WidthRound = "floor"
) -> int:
    """Width of the reduced branches: max(C / R, min_channels) (§IV-D4: 'minimum number of
    channels ... is 32'). Where R does not divide C and the floor stays the width, the
    fraction is resolved by ``rounding`` ("floor": 1040/32 -> 32, "ceil": 33); where C / R
    itself would be the width, R must divide C."""
    if reduction < 1:
        raise BA2MConfigError(f"reduction R must be a positive integer, got {reduction}")
    if channels % reduction and channels // reduction > min_channels:
        raise BA2MConfigError(
            f"reduction R={reduction} does not divide the {channels} channels; "
            f"choose an R that divides {channels} (e.g. a power of two)"
        )
    reduced = -(-channels // reduction) if rounding == "ceil" else channels // reduction
    return max(reduced, min_channels)


def _groups(grouping: Grouping, reduction: int, *widths: int) -> int:
    """R groups (or the largest count dividing every width, on stages narrower than R)."""
    if grouping == "none":
        return 1
    return math.gcd(reduction, *widths)


def _act(kind: Activation) -> nn.Module:
    return nn.ReLU(inplace=True) if kind == "relu" else nn.Identity()


class ChannelAttention(nn.Module):
    """A_C = BN(FC1(FC0(GAP(x)))): C -> d -> C, output (N, C). Eq. 6's W0, W1 have no bias
    (``bias=False``); ``bias=True`` adds them (fc1's bias is removed again by the BN)."""

    def __init__(self, channels: int, width: int, act: Activation, bias: bool = False) -> None:
        super().__init__()
        self.fc0 = nn.Linear(channels, width, bias=bias)
        self.act = _act(act)
        self.fc1 = nn.Linear(width, channels, bias=bias)
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc1(self.act(self.fc0(x.mean((2, 3))))))


class LocalSpatialAttention(nn.Module):
    """A_LS = BN(1x1 C->d, 3x3 d->d, 1x1 d->C), pooled to (N, C) for the combination."""

    def __init__(
        self, channels: int, width: int, groups: int, grouping: LsaGrouping, act: Activation
    ) -> None:
        super().__init__()
        pointwise = 1 if grouping == "none" else groups
        self.g0 = nn.Conv2d(channels, width, 1, groups=pointwise, bias=False)
        self.g1 = nn.Conv2d(
            width, width, 3, padding=1, groups=groups if grouping == "all" else 1, bias=False
        )
        self.g2 = nn.Conv2d(width, channels, 1, groups=pointwise, bias=False)
        self.act = _act(act)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.bn(self.g2(self.act(self.g1(self.act(self.g0(x))))))
        return a.mean((2, 3))


class GlobalSpatialAttention(nn.Module):
    """A_GS = softmax(f(x) g(x)^T) h(x) over the H*W positions, pooled to (N, C).

    f, g, h are 1x1 convolutions C -> d. The pooled d-vector is brought back to C channels by
    ``out="pool"`` (each reduced channel stands for its C/d input channels, and where d > C
    runs of d/C channels are averaged; no parameters, as Eq. 16 counts), ``out="repeat"``
    (nearest channel) or ``out="project"`` (a d -> C linear map, as in non-local blocks).
    The branch only needs the positions' mean of the attention output, and
    mean_i(P_i V) = (mean_i P_i) V, so ``impl="pooled"`` (default) computes the column means of
    the softmax matrix in chunks of query rows and multiplies them by V
    (:mod:`models.pooled_attention`): L²d + Ld MACs instead of 2L²d, logits and softmax in
    float32 even under autocast, and no (HW)x(HW) matrix kept for backward (recomputed there).
    ``impl="matmul"`` is the reference that materialises the attention matrix;
    ``impl="sdpa"`` calls ``scaled_dot_product_attention``, which on the CPU runs its math
    kernel (the q, k, v views of the NCHW maps have a last-dim stride of HW, not 1, which
    the CPU flash kernel requires), so it too keeps the (HW)x(HW) matrix. All three compute
    the same function (``tests/test_pooled_gsa.py``).
    """

    def __init__(
        self,
        channels: int,
        width: int,
        groups: int,
        out: GsaOut,
        scaled: bool,
        impl: GsaImpl,
    ) -> None:
        super().__init__()
        self.f = nn.Conv2d(channels, width, 1, groups=groups, bias=False)
        self.g = nn.Conv2d(channels, width, 1, groups=groups, bias=False)
        self.h = nn.Conv2d(channels, width, 1, groups=groups, bias=False)
        self.project = nn.Linear(width, channels, bias=False) if out == "project" else None
        self.channels, self.out = channels, out
        self.scale = 1.0 / math.sqrt(width) if scaled else 1.0
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (m(x).flatten(2).transpose(1, 2) for m in (self.f, self.g, self.h))  # N,HW,d
        if self.impl == "pooled":
            pooled = pooled_attention(q, k, v, self.scale)  # N, d (float32)
        else:
            if self.impl == "sdpa":
                # Math kernel on the CPU (last-dim stride HW) and, with 3-D inputs, on CUDA.
                # 4-D inputs would pick the fused GPU kernels (H200: step ratio 1.9 instead
                # of 2.6, memory 1.20x instead of 1.78x), but those diverged in 2 of 2 full
                # CIFAR epochs (bf16, unscaled logits) where the math kernel did not: kept off
                # until that is understood (docs/ba2m-options.md, gsa_impl).
                a = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            else:
                a = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * self.scale, dim=-1).bmm(v)
            pooled = a.mean(1)  # N, d
        if self.project is not None:
            return self.project(pooled)
        if self.out == "pool":  # d -> C by averaging runs of d/C channels (repeating if d < C)
            return F.adaptive_avg_pool1d(pooled.unsqueeze(1), self.channels).squeeze(1)
        return F.interpolate(pooled.unsqueeze(1), size=self.channels, mode="nearest").squeeze(1)


class BA2M(nn.Module):
    """Batch aware attention module: (N, C, H, W) -> (N, C, H, W), x̂_i = x_i + w_i · x_i
    (``excite="residual"``, default) or x̂_i = w_i · x_i (``excite="scale"``, Eq. 13).

    Args:
        channels: C of the feature map it refines.
        reduction: R, the reduction ratio of every branch (paper default 32).
        min_channels: floor of the reduced width d = max(C/R, min_channels).
        branches: any non-empty subset of ("ca", "lsa", "gsa") (Table IX).
        lsa_groups: which LSA convolutions split the channels into R groups: "pointwise"
            (the two 1x1s; the 3x3 is dense in the reduced width), "none" or "all".
        gsa_groups: "reduction" (f, g, h in R groups, 3C²/R² params as Eq. 16) or "none".
        gsa_out: how the d-wide GSA output returns to C channels: "pool" (each reduced
            channel stands for its C/d input channels; where d > C, as on 16-channel stages
            widened to 32, runs of d/C reduced channels are averaged), "repeat" (nearest
            channel: where d > C it keeps every (d/C)-th channel only) or "project".
        gsa_norm: "bn" (the pooled GSA output is batch-normalised like A_C and A_LS before
            the max: Eq. 9's "we normalize the scale of the result spectrum") or "none".
        ca_bias: biases in A_C's FC0/FC1 (Eq. 6's W0, W1 have none).
        width_round: where R does not divide C but max(C/R, min_channels) keeps the floor,
            "floor" or "ceil" the fraction.
        sar_norm: "none" (softmax of the SARs as they are, Eq. 11) or "standardize" (the
            SARs are standardised over the batch first: zero mean, unit variance).
        excite: "residual" (x̂_i = x_i + w_i · x_i, the form of BAM's F + F ⊗ M(F); the
            default, because Eq. 13 as printed collapses on real images) or "scale"
            (x̂_i = w_i · x_i, Eq. 13). docs/ba2m-options.md, "Real images".
        gsa_scaled: divide f g^T by sqrt(d) (Eq. 8 has no scale).
        hidden_act: activation between the stacked layers of CA and LSA.
        batch_scale: "none" (w = softmax, as Eq. 11) or "n" (w = N * softmax, mean weight 1).
        eval_mode: "identity" (deactivated at inference, §III-D; the default: with
            ``excite="residual"`` it equals evaluating in batches of 256 and does not depend
            on the test batch) or "batch" (the same computation over the evaluation batch).
        batch_scope: "local" (softmax over this process's batch) or "global" (over the batch
            of all data-parallel processes, gathered with a differentiable all_gather). Global
            gathers only in training mode inside an initialised process group; in eval mode,
            or without a process group, the softmax is over the batch given (evaluation is
            not data-parallel in this harness, see docs/distributed.md).
        gsa_impl: "pooled" (exact pooled attention, no (HW)² matrix kept; default),
            "sdpa" (scaled_dot_product_attention; its math kernel here) or "matmul"
            (reference). All three compute the same function.
    """

    #: Its output depends on the other samples of the batch (harness/costs/counting.py counts it
    #: at batch 2: at batch 1 the module returns its input scaled by exactly 1 + 1 or 1).
    batch_dependent = True

    def __init__(
        self,
        channels: int,
        reduction: int = 32,
        min_channels: int = 32,
        branches: tuple[str, ...] = BRANCHES,
        *,
        lsa_groups: LsaGrouping = "pointwise",
        gsa_groups: Grouping = "reduction",
        gsa_out: GsaOut = "pool",
        gsa_scaled: bool = False,
        hidden_act: Activation = "relu",
        batch_scale: BatchScale = "none",
        eval_mode: EvalMode = "identity",
        batch_scope: BatchScope = "local",
        gsa_impl: GsaImpl = "pooled",
        gsa_norm: BranchNorm = "bn",
        ca_bias: bool = False,
        width_round: WidthRound = "floor",
        sar_norm: SarNorm = "none",
        excite: Excite = "residual",
    ) -> None:
        super().__init__()
        branches = tuple(branches)
        if not branches:
            raise BA2MConfigError("BA2M needs at least one branch; choose from ca, lsa, gsa")
        unknown = sorted(set(branches) - set(BRANCHES))
        if unknown:
            raise BA2MConfigError(f"unknown BA2M branch {unknown}; choose from ca, lsa, gsa")
        _check_choice("lsa_groups", lsa_groups, ("pointwise", "none", "all"))
        _check_choice("gsa_groups", gsa_groups, ("none", "reduction"))
        _check_choice("gsa_out", gsa_out, ("pool", "repeat", "project"))
        _check_choice("hidden_act", hidden_act, ("relu", "none"))
        _check_choice("batch_scale", batch_scale, ("none", "n"))
        _check_choice("eval_mode", eval_mode, ("batch", "identity"))
        _check_choice("batch_scope", batch_scope, ("local", "global"))
        _check_choice("gsa_norm", gsa_norm, ("bn", "none"))
        _check_choice("width_round", width_round, ("floor", "ceil"))
        _check_choice("sar_norm", sar_norm, ("none", "standardize"))
        _check_choice("excite", excite, ("scale", "residual"))
        _check_choice("gsa_impl", gsa_impl, ("pooled", "sdpa", "matmul"))
        width = reduced_width(channels, reduction, min_channels, width_round)
        self.channels, self.width, self.branches = channels, width, branches
        self.batch_scale, self.eval_mode, self.batch_scope = batch_scale, eval_mode, batch_scope
        self.sar_norm, self.excite = sar_norm, excite
        self.ca = (
            ChannelAttention(channels, width, hidden_act, ca_bias) if "ca" in branches else None
        )
        self.lsa = (
            LocalSpatialAttention(
                channels,
                width,
                _groups("reduction", reduction, channels, width),
                lsa_groups,
                hidden_act,
            )
            if "lsa" in branches
            else None
        )
        self.gsa = (
            GlobalSpatialAttention(
                channels,
                width,
                _groups(gsa_groups, reduction, channels, width),
                gsa_out,
                gsa_scaled,
                gsa_impl,
            )
            if "gsa" in branches
            else None
        )
        self.gsa_bn = (
            nn.BatchNorm1d(channels) if self.gsa is not None and gsa_norm == "bn" else None
        )
        # since the last diagnostics(): steps, sum and max of the largest share of the weight
        self._steps, self._share_sum, self._share_max = 0, torch.zeros(()), torch.zeros(())

    def sar(self, x: torch.Tensor) -> torch.Tensor:
        """Sample-wise attention representation A(x_i), shape (N,) (Eqs. 9-10)."""
        maps = [m(x) for m in (self.ca, self.lsa) if m is not None]
        if self.gsa is not None:
            gsa = self.gsa(x)
            maps.append(self.gsa_bn(gsa) if self.gsa_bn is not None else gsa)
        combined = maps[0] if len(maps) == 1 else torch.stack(maps).amax(0)
        return combined.mean(1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Batch weights w (N,): softmax of the SARs over the batch (Eq. 11)."""
        sar = self.sar(x)
        gather = self.batch_scope == "global" and self.training and _distributed()
        every = _GatherBatch.apply(sar) if gather else sar
        if self.sar_norm == "standardize":
            every = (every - every.mean()) / (every.std(unbiased=False) + 1e-5)
        w = torch.softmax(every, dim=0)
        if gather:
            rank, n = torch.distributed.get_rank(), sar.shape[0]
            w = w[rank * n:(rank + 1) * n]
        if self.training:
            share = (w.detach().amax() / w.detach().sum()).float()
            self._steps += 1
            self._share_sum = self._share_sum.to(share.device) + share
            self._share_max = torch.maximum(self._share_max.to(share.device), share)
        return w * every.shape[0] if self.batch_scale == "n" else w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.eval_mode == "identity":
            return x
        if x.shape[0] == 1 and not (self.batch_scope == "global" and _distributed()):
            # the softmax of one SAR is exactly 1 under every reading (no BN over one sample)
            return x + x if self.excite == "residual" else x
        w = self.weights(x).to(x.dtype).view(-1, 1, 1, 1)
        return x + x * w if self.excite == "residual" else x * w

    def diagnostics(self) -> dict[str, float]:
        """Training-step statistics since the last call, then reset: the largest share of
        one sample's weight in its batch (``max_share``: mean and largest over the steps).
        An even batch of N gives 1/N; a collapsed one gives nearly 1."""
        if not self._steps:
            return {}
        out = {"max_share_mean": float(self._share_sum) / self._steps,
               "max_share_max": float(self._share_max)}
        self._steps, self._share_sum, self._share_max = 0, torch.zeros(()), torch.zeros(())
        return out

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, width={self.width}, branches={self.branches}, "
            f"batch_scale={self.batch_scale}, eval_mode={self.eval_mode}, "
            f"batch_scope={self.batch_scope}"
        )


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BA2MConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class _GatherBatch(torch.autograd.Function):
    """All-gather along dim 0 with a gradient: forward concatenates every process's tensor in
    rank order; backward sums the gradient of the whole concatenation over the processes
    (all_reduce) and returns this process's slice, so each sample's gradient holds the terms of
    every process's loss. all_reduce rather than reduce_scatter: gloo has no reduce_scatter,
    and the tensors gathered here are a few floats per sample."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        dist = torch.distributed
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]  # type: ignore[attr-defined]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad)
        start = ctx.rank * ctx.n  # type: ignore[attr-defined]
        return grad[start:start + ctx.n]  # type: ignore[attr-defined]



