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
of 4 bytes, take at most :data:`CHUNK_BYTES` (32 MiB on the CPU, 256 MiB elsewhere), so
rows = clamp(budget // (4 N L), 1, L). Two such blocks are allocated once per pass and
reused by every chunk (logits and softmax; in backward the logits' block then holds dS), so
memory beyond q, k, v and the gradients is O(rows x L) per sample, never L² (BA²M after
ResNet stage 1, N=8 at 56x56: 334 rows, 10 chunks; CIFAR ResNet-50 after stage 1, N=64 at
32x32: 128 rows, 8 chunks; one COCO map, L=54,400: 154 rows, 354 chunks). Why 32 MiB on the
CPU: single-threaded, the CIFAR case took 0.62-0.70 s of CPU per forward + backward of the
branch at 4-32 MiB and 0.75 s at 64 MiB (the matmul reference: 1.3 s); each chunk is about
ten kernel calls, and where the intra-op threads are starved (a 2-core CPU shared with other
work) every call costs milliseconds, so fewer chunks run faster there (2 threads: 1.0-1.4 s
at 32 MiB, 1.9 s at 16, 3.3 s at 8). The budget elsewhere (GPU) is a guess, not measured.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

#: Byte budget of one chunk's logits (whole batch) by device type; others use ``"default"``.
CHUNK_BYTES = {"cpu": 32 * 2**20, "default": 256 * 2**20}


def chunk_rows(n: int, length: int, device: torch.device | str = "cpu") -> int:
    """Query rows per chunk: as many as keep N x rows x L float32 logits within the budget."""
    kind = torch.device(device).type
    budget = CHUNK_BYTES.get(kind, CHUNK_BYTES["default"])
    return max(1, min(length, budget // (4 * max(n, 1) * max(length, 1))))


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _block(buf: torch.Tensor, n: int, r: int, s: int) -> torch.Tensor:
    """A contiguous (n, r, s) view on the start of the flat buffer ``buf``."""
    return buf[: n * r * s].view(n, r, s)


def _like(t: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in ``t``'s dtype and memory layout: the gradient of GSA's (N, L, d) view of
    an NCHW map flows back to its convolution as a contiguous NCHW gradient."""
    out = torch.empty_like(t)
    out.copy_(value)
    return out


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
            n, s = q.shape[0], k.shape[1]
            c = torch.zeros(n, 1, s, dtype=dt, device=q.device)  # column sums of P
            ones = torch.ones(n, 1, min(rows, length), dtype=dt, device=q.device)
            # two blocks reused by every chunk: no allocation per chunk (freed and reallocated
            # blocks of this size fragmented glibc's heap, by up to ~4 L^2 bytes at L = 54,400)
            logits, probs = (torch.empty(n * min(rows, length) * s, dtype=dt, device=q.device)
                             for _ in range(2))
            for i in range(0, length, rows):
                qc = qs[:, i:i + rows]
                r = qc.shape[1]
                sb, pb = _block(logits, n, r, s), _block(probs, n, r, s)
                torch.bmm(qc, kt, out=sb)
                torch.softmax(sb, -1, out=pb)  # N, r, S
                c.baddbmm_(ones[:, :, :r], pb)  # one call: c += the chunk's column sums
            del logits, probs
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
                dv = _like(v, (c / length).unsqueeze(2) * g.unsqueeze(1))  # N, S, Ev
            if need_q or need_k:
                gc = torch.bmm(vv, g.unsqueeze(2)) / length  # N, S, 1: dLoss/dP_ij, any i
                gct = gc.transpose(1, 2)  # N, 1, S
                qs = (q.to(dt) * scale).contiguous()
                kk = k.to(dt)
                kt = kk.transpose(1, 2)
                n, s = q.shape[0], k.shape[1]
                dq_: list[torch.Tensor] = []
                dk_ = torch.zeros(k.shape, dtype=dt, device=q.device)
                blocks, probs = (torch.empty(n * min(rows, length) * s, dtype=dt,
                                             device=q.device) for _ in range(2))
                for i in range(0, length, rows):
                    qc = qs[:, i:i + rows]
                    r = qc.shape[1]
                    ds, pb = _block(blocks, n, r, s), _block(probs, n, r, s)
                    torch.bmm(qc, kt, out=ds)  # the logits first, then dS in their place
                    torch.softmax(ds, -1, out=pb)  # N, r, S
                    torch.sub(gct, torch.bmm(pb, gc), out=ds)  # dS = P * (gc - P gc)
                    ds.mul_(pb)
                    if need_q:
                        dq_.append(torch.bmm(ds, kk))
                    dk_.baddbmm_(ds.transpose(1, 2), qc)  # qc carries the scale already
                del blocks, probs
                dq = _like(q, torch.cat(dq_, 1).mul_(scale)) if need_q else None
                dk = _like(k, dk_) if need_k else None
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
