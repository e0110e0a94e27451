"""The exact pooled global-spatial branch (models/pooled_attention.py, gsa_impl="pooled"):
same function as the reference, half the multiply-adds, bounded memory, and the kernel the
"sdpa" option really runs on the CPU."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from harness.bench import GSA_MODULE_SHAPE, gsa_module_step, memory_of
from harness.costs.counting import count
from models.ba2m import BA2M, BA2MConfigError, GlobalSpatialAttention
from models.pooled_attention import PooledAttention, chunk_rows, pooled_attention

IMPLS = ("pooled", "sdpa", "matmul")


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    return (torch.softmax(q @ k.transpose(1, 2) * scale, -1) @ v).mean(1)


def _nchw_qkv(n: int, d: int, length: int, dtype: torch.dtype = torch.float64,
              std: float = 1.0, seed: int = 0) -> list[torch.Tensor]:
    """q, k, v as GSA makes them: (N, d, L) maps viewed as (N, L, d), last-dim stride L."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, d, length, generator=g, dtype=torch.float64) * std).to(dtype)
            .transpose(1, 2) for _ in range(3)]


@pytest.mark.parametrize("rows", [1, 3, 7, 64])
def test_gradcheck_float64_any_chunking(rows: int) -> None:
    """The hand-written backward is the derivative of the forward (float64 gradcheck), for
    chunks of one row, chunks not dividing L, one exact chunk and a chunk larger than L;
    non-contiguous q, k, v (NCHW-derived strides), unequal q and k lengths."""
    q, k, v = (t.requires_grad_() for t in _nchw_qkv(2, 5, 7))
    assert q.stride(-1) != 1
    assert torch.autograd.gradcheck(lambda a, b, c: PooledAttention.apply(a, b, c, 0.7, rows),
                                    (q, k, v))
    k2 = torch.randn(2, 9, 5, dtype=torch.float64, requires_grad=True)
    v2 = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: PooledAttention.apply(a, b, c, 1.3, rows),
                                    (q, k2, v2))
    torch.testing.assert_close(pooled_attention(q, k2, v2, 1.3, rows),
                               _reference(q, k2, v2, 1.3))


@pytest.mark.parametrize("how", ["sum", "expand"])
def test_stride_zero_gradient_and_partial_requires_grad(how: str) -> None:
    """``.sum()``, or an ``.expand``-ed gradient given to ``backward``, sends a stride-0
    gradient into the Function's backward; the gradients equal the reference's. Only the
    inputs that require a gradient get one."""
    q, k, v = (t.requires_grad_() for t in _nchw_qkv(3, 4, 10))

    def backward(out: torch.Tensor) -> None:
        if how == "sum":
            out.sum().backward()
        else:
            out.backward(torch.tensor(0.3, dtype=out.dtype).expand(out.shape))

    out = pooled_attention(q, k, v, 0.5, rows=3)
    strides: list[tuple[int, ...]] = []
    out.register_hook(lambda g: strides.append(g.stride()))
    backward(out)
    assert strides == [(0, 0)]
    got = [t.grad for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    backward(_reference(q, k, v, 0.5))
    for a, t in zip(got, (q, k, v)):
        torch.testing.assert_close(a, t.grad)
    q2, k2, v2 = (t.detach() for t in (q, k, v))
    v2.requires_grad_()
    pooled_attention(q2, k2, v2, 0.5).sum().backward()
    assert q2.grad is None and k2.grad is None and v2.grad is not None


def _run_gsa(m: torch.nn.Module, x: torch.Tensor,
             autocast: torch.dtype | None = None) -> list[torch.Tensor]:
    """Output and the gradients w.r.t. x and the f, g, h weights (float64 copies)."""
    x = x.clone().requires_grad_()
    m.zero_grad(set_to_none=True)
    if autocast is None:
        out = m(x)
    else:
        with torch.autocast("cpu", dtype=autocast):
            out = m(x)
    seed = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view(out.shape)
    (out.double() * seed).sum().backward()
    return [out.double(), x.grad.double(), *(getattr(m, n).weight.grad.double() for n in "fgh")]


@pytest.mark.parametrize(("scaled", "out"), [(False, "repeat"), (True, "project")])
def test_pooled_equals_matmul_in_float32(scaled: bool, out: str) -> None:
    """Through GlobalSpatialAttention: outputs and gradients w.r.t. x and f, g, h."""
    torch.manual_seed(0)
    ref = BA2M(64, gsa_impl="matmul", gsa_scaled=scaled, gsa_out=out).gsa
    pooled = copy.deepcopy(ref)
    pooled.impl = "pooled"
    x = torch.randn(4, 64, 16, 16)
    for a, b in zip(_run_gsa(pooled, x), _run_gsa(ref, x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


def test_bf16_autocast_module_closer_to_float64() -> None:
    """Under CPU bf16 autocast, through GlobalSpatialAttention, against the float64 module.
    x and the f, g, h weights are small multiples of 1/4, so the bf16 convolutions give q, k,
    v exactly and every path starts from the reference's own q, k, v (logits std ~10, as
    unscaled logits grow in training): the errors are the attention's own. Outputs: pooled
    is float32-exact, the others carry bf16 logits / softmax; gradients w.r.t. x and the
    weights also pass through the bf16 convolution backward, a floor common to all paths,
    so there pooled must beat matmul and not lose to sdpa by more than 10 %."""
    torch.manual_seed(0)
    base = BA2M(64, gsa_impl="matmul").gsa
    x = torch.randint(-4, 5, (4, 64, 16, 16)).float()
    with torch.no_grad():
        for n in "fgh":
            w = getattr(base, n).weight
            w.copy_(torch.randint(-2, 3, w.shape).float() * 0.25)
    ref = _run_gsa(copy.deepcopy(base).double(), x.double())
    errors = {}
    for impl in IMPLS:
        m = copy.deepcopy(base)
        m.impl = impl
        errors[impl] = [_rel(a, b) for a, b in zip(_run_gsa(m, x, torch.bfloat16), ref)]
    pooled, sdpa, matmul = (errors[i] for i in IMPLS)
    assert pooled[0] < 1e-5 < min(sdpa[0], matmul[0]), errors
    for i in range(1, 5):
        assert pooled[i] < matmul[i] and pooled[i] < 1.1 * sdpa[i], errors


@pytest.mark.parametrize("std", [0.5, 2.0])
def test_bf16_autocast_attention_gradients_closer_to_float64(std: float) -> None:
    """The attention alone, on bf16 q, k, v with GSA's strides (what the autocast convs hand
    it), each path exactly as GlobalSpatialAttention calls it: output and the gradients
    w.r.t. q, k, v are closer to float64 for pooled than for sdpa and matmul, and pooled's
    gradients are the float64 ones correctly rounded to bf16 (up to rare ties)."""
    qkv = _nchw_qkv(4, 32, 256, torch.bfloat16, std=std)
    paths = {
        "pooled": lambda q, k, v: pooled_attention(q, k, v, 1.0),
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=1.0).mean(1),
        "matmul": lambda q, k, v: torch.softmax(torch.bmm(q, k.transpose(1, 2)) * 1.0,
                                                dim=-1).bmm(v).mean(1),
    }

    def run(name: str, dtype: torch.dtype) -> list[torch.Tensor]:
        leaves = [t.detach().to(dtype).requires_grad_() for t in qkv]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype != torch.float64):
            out = paths[name](*leaves)
        seed = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view(out.shape)
        (out.double() * seed).sum().backward()
        return [out.double(), *(t.grad.double() for t in leaves)]

    ref = run("matmul", torch.float64)
    rounded = [r.to(torch.bfloat16).double() for r in ref]
    err = {i: [_rel(a, b) for a, b in zip(run(i, torch.bfloat16), ref)] for i in IMPLS}
    for i in range(4):
        assert err["pooled"][i] < min(err["sdpa"][i], err["matmul"][i]), err
    got = run("pooled", torch.bfloat16)
    for a, r, b in zip(got[1:], rounded[1:], ref[1:]):
        assert _rel(a, r) < 1e-3 < _rel(r, b)  # rounding dominates pooled's error


def test_count_of_one_module_is_half_the_products() -> None:
    """fvcore sees the Function as prim::PythonOp.PooledAttention; the handle counts
    L·L·d + L·d per sample (Q K^T and the pooled product), against 2·L²·d for matmul and
    sdpa; the 1x1 convolutions count alike."""
    length, d = 16 * 16, 32

    def gsa(impl: str) -> GlobalSpatialAttention:
        return GlobalSpatialAttention(3, d, 1, "repeat", False, impl)  # type: ignore[arg-type]

    convs = 3 * 3 * d * length
    pooled, sdpa, matmul = (count(gsa(i), 16) for i in IMPLS)
    assert pooled.by_operator == {"conv": convs, "pooled_attention": length * length * d
                                  + length * d}
    assert pooled.uncounted == {}
    assert matmul.by_operator == {"conv": convs, "bmm": 2 * length * length * d}
    assert sdpa.by_operator == {"conv": convs, "scaled_dot_product_attention":
                                2 * length * length * d}
    assert pooled.macs == convs + length * length * d + length * d
    assert matmul.macs == sdpa.macs == convs + 2 * length * length * d
    assert pooled.fvcore_total == convs  # fvcore alone would call the Function free
    assert count(gsa("pooled"), 16, batch=2).macs == pooled.macs


def test_module_memory_pooled_at_least_4x_lower() -> None:
    """One BA2M(256) module, all branches, forward + backward on 8 maps of 256x56x56
    (ImageNet after stage 1): the peak of tensor memory allocated and the bytes saved for
    backward (sizes, not timings) are each at least 4x lower with pooled than with matmul or
    sdpa (the latter run its math kernel here, the same tensors as matmul)."""
    mem = {impl: memory_of(gsa_module_step(impl, GSA_MODULE_SHAPE)) for impl in IMPLS}
    peak = {i: m[0] for i, m in mem.items()}
    saved = {i: m[1] for i, m in mem.items()}
    for other in ("sdpa", "matmul"):
        assert peak[other] >= 4 * peak["pooled"], peak
        assert saved[other] >= 4 * saved["pooled"], saved
    # the L x L matrices alone (8 x 3136 x 3136 float32 = 300 MiB) are saved by the others
    assert saved["matmul"] > 8 * 3136 * 3136 * 4 > 3 * saved["pooled"]


def test_chunk_rule_bounds_the_logit_block() -> None:
    assert chunk_rows(8, 3136, "cpu") == 32 * 2**20 // (4 * 8 * 3136) == 334
    assert chunk_rows(1, 54_400, "cpu") * 54_400 * 4 <= 32 * 2**20
    assert chunk_rows(1, 10, "cpu") == 10  # never more rows than there are
    assert chunk_rows(10**6, 10**6, "cpu") == 1  # never fewer than one
    assert chunk_rows(8, 3136, "cuda") == 256 * 2**20 // (4 * 8 * 3136)


def _sdpa_kernels(q: torch.Tensor) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        F.scaled_dot_product_attention(q, q, q).mean(1).sum().backward()
    return {e.name for e in prof.events() if "scaled_dot_product" in e.name}


def test_sdpa_impl_runs_the_math_kernel_on_the_cpu() -> None:
    """gsa_impl="sdpa" on the CPU runs aten::_scaled_dot_product_attention_math (which keeps
    the L x L matrix), never the CPU flash kernel: GSA's q, k, v are views of NCHW maps with a
    last-dim stride of HW, and the flash kernel needs stride 1 there. The same values made
    contiguous do take the flash kernel, so the strides, not the 3-D shape, decide."""
    m = BA2M(64, gsa_impl="sdpa").gsa
    x = torch.randn(2, 64, 8, 8, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        m(x).sum().backward()
    names = {e.name for e in prof.events()}
    assert "aten::_scaled_dot_product_attention_math" in names
    assert not {n for n in names if "flash" in n or "efficient" in n}
    q = m.f(x).flatten(2).transpose(1, 2).detach()
    assert q.stride(-1) == 64
    assert "aten::_scaled_dot_product_attention_math" in _sdpa_kernels(q.requires_grad_())
    flash = _sdpa_kernels(q.detach().contiguous().requires_grad_())
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in flash
    assert "aten::_scaled_dot_product_attention_math" not in flash


def test_pooled_is_the_default_and_impls_are_checked() -> None:
    assert BA2M(64).gsa.impl == "pooled"
    assert {BA2M(64, gsa_impl=i).gsa.impl for i in IMPLS} == set(IMPLS)
    with pytest.raises(BA2MConfigError, match="gsa_impl"):
        BA2M(64, gsa_impl="flash")  # type: ignore[arg-type]


def test_bf16_inputs_give_float32_output_and_input_dtype_gradients() -> None:
    q, k, v = (t.requires_grad_() for t in _nchw_qkv(2, 8, 12, torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pooled_attention(q, k, v, 1.0)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert {t.grad.dtype for t in (q, k, v)} == {torch.bfloat16}
