"""Exact pooled attention: mean over queries of softmax(q k^T * scale) v, without the L x L matrix.

BA²M's global-spatial branch pools its attention output over the positions straight away
(``a.mean(1)``). Because the mean is linear,

    mean_i (P V)_i = (mean_i P_i) V = (c / L) V,   c_j = sum_i P_ij (column sums of P),

so the (L x L) softmax matrix P never has to be kept and the A V product (L² d MACs) becomes a
(1 x L)(L x d) one (L d MACs): the forward costs L² d + L d multiply-accumulates instead of
2 L² d. :class:`PooledAttention` computes it in chunks of query rows and saves only q, k, v
and c for backward, which recomputes each chunk's P.

Precision: logits, softmax and every product are computed in float32 (float64 for float64
inputs), with autocast switched off inside, whatever dtype q, k, v arrive in (e.g. bf16 under
autocast); the output is float32 (float64) and the input gradients are cast back to the
inputs' dtypes.

Chunk rule (:func:`chunk_rows`): a chunk's logits for the whole batch, N x rows x L floats
of 4 bytes, take at most :data:`CHUNK_BYTES` (8 MiB on the CPU, 256 MiB elsewhere), so
rows = clamp(budget // (4 N L), 1, L). Forward holds two such blocks (logits and softmax),
backward three (and dS); memory beyond q, k, v and the gradients is O(rows x L) per sample,
independent of L² (BA²M after ResNet stage 1, N=8 at 56x56: 83 rows, 38 chunks; CIFAR
ResNet-50 after stage 1, N=64 at 32x32: 32 rows, 32 chunks). On the CPU 8 MiB keeps those
blocks inside a 32 MiB L3 cache: single-threaded, CIFAR N=64, it took 0.70 s of CPU per
forward + backward of the branch at 2-8 MiB and up to 1.2 s at 32-64 MiB, against 1.3 s for
the matmul reference. Each chunk costs ~10 kernel calls, which matters only where the
intra-op threads are starved (a CPU shared with other work), so the budget is no smaller.
The budget elsewhere (GPU) is a guess, not yet measured.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

#: Byte budget of one chunk's logits (whole batch) by device type; others use ``"default"``.
CHUNK_BYTES = {"cpu": 8 * 2**20, "default": 256 * 2**20}


def chunk_rows(n: int, length: int, device: torch.device | str = "cpu") -> int:
    """Query rows per chunk: as many as keep N x rows x L float32 logits within the budget."""
    kind = torch.device(device).type
    budget = CHUNK_BYTES.get(kind, CHUNK_BYTES["default"])
    return max(1, min(length, budget // (4 * max(n, 1) * max(length, 1))))


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _no_autocast(device: torch.device) -> AbstractContextManager:
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type autocast does not know (meta, ...)
        return nullcontext()


class PooledAttention(torch.autograd.Function):
    """out = mean over the Lq queries of softmax(q k^T * scale) v, shape (N, Ev).

    q: (N, Lq, E), k: (N, S, E), v: (N, S, Ev); any strides. ``rows`` query rows per chunk.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        scale: float, rows: int,
    ) -> torch.Tensor:
        dt = _compute_dtype(q, k, v)
        length = q.shape[1]
        with _no_autocast(q.device):
            qs = (q.to(dt) * scale).contiguous()  # row chunks of a (N, L, E) layout
            kt = k.to(dt).transpose(1, 2)  # N, E, S
            n = q.shape[0]
            c = torch.zeros(n, 1, k.shape[1], dtype=dt, device=q.device)  # column sums of P
            ones = torch.ones(n, 1, min(rows, length), dtype=dt, device=q.device)
            for i in range(0, length, rows):
                p = torch.softmax(torch.bmm(qs[:, i:i + rows], kt), dim=-1)  # N, rows, S
                c.baddbmm_(ones[:, :, :p.shape[1]], p)  # one op: c += sum over the rows
                del p
            c = c.squeeze(1)
            out = torch.bmm((c / length).unsqueeze(1), v.to(dt)).squeeze(1)
        ctx.save_for_backward(q, k, v, c)
        ctx.scale, ctx.rows = scale, rows  # type: ignore[attr-defined]
        return out

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        q, k, v, c = ctx.saved_tensors  # type: ignore[attr-defined]
        scale, rows = ctx.scale, ctx.rows  # type: ignore[attr-defined]
        need_q, need_k, need_v = ctx.needs_input_grad[:3]  # type: ignore[attr-defined]
        dt, length = c.dtype, q.shape[1]
        dq = dk = dv = None
        with _no_autocast(q.device):
            g = grad.to(dt).contiguous()  # may arrive with stride 0 (from .mean / .expand)
            vv = v.to(dt)
            if need_v:
                dv = ((c / length).unsqueeze(2) * g.unsqueeze(1)).to(v.dtype)  # N, S, Ev
            if need_q or need_k:
                gc = torch.bmm(vv, g.unsqueeze(2)) / length  # N, S, 1: dLoss/dP_ij, any i
                gct = gc.transpose(1, 2)  # N, 1, S
                qs = (q.to(dt) * scale).contiguous()
                kk = k.to(dt)
                kt = kk.transpose(1, 2)
                dq_: list[torch.Tensor] = []
                dk_ = torch.zeros(k.shape, dtype=dt, device=q.device)
                for i in range(0, length, rows):
                    qc = qs[:, i:i + rows]
                    p = torch.softmax(torch.bmm(qc, kt), dim=-1)  # N, rows, S
                    ds = gct - torch.bmm(p, gc)  # dS = P * (gc - sum_j P_j gc_j)
                    ds.mul_(p)
                    del p
                    if need_q:
                        dq_.append(torch.bmm(ds, kk))
                    dk_.baddbmm_(ds.transpose(1, 2), qc)  # qc carries the scale already
                    del ds
                dq = torch.cat(dq_, 1).mul_(scale).to(q.dtype) if need_q else None
                dk = dk_.to(k.dtype) if need_k else None
        return dq, dk, dv, None, None


def pooled_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    scale: float | None = None, rows: int | None = None,
) -> torch.Tensor:
    """mean over dim 1 of softmax(q k^T * scale) v for (N, L, E) inputs: (N, Ev), exact, with
    no (L x S) matrix kept (see the module docstring). ``scale`` defaults to 1/sqrt(E);
    ``rows`` to :func:`chunk_rows`."""
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError("pooled_attention takes (N, L, E) q, k and v")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if rows is None:
        rows = chunk_rows(q.shape[0], k.shape[1], q.device)
    return PooledAttention.apply(q, k, v, float(scale), int(rows))
