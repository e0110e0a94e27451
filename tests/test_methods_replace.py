"""Methods that rebuild layers (SK, AA, SASA): shapes, gradients, one layer's params and MACs
against its paper's formula, reference implementations, memory at CIFAR size, BA²M combinations."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from harness.bench import memory_of
from harness.costs.counting import FlopCountAnalysis, sdpa_flop_jit
from models import ModelConfigError, build_model
from models.methods.aa import AAConv, aa, aa_depths
from models.methods.sasa import LocalSelfAttention, sasa
from models.methods.sk import SKConv, sk


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _macs(layer: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """fvcore's MACs by operator for one layer, with the harness's SDPA handle."""
    fa = FlopCountAnalysis(layer.eval(), x)
    fa.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
    fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return dict(fa.by_operator())


def _grads_reach(model: nn.Module, kind: type[nn.Module], x: torch.Tensor) -> None:
    model.train()
    model(x).logsumexp(1).sum().backward()
    layers = [m for m in model.modules() if isinstance(m, kind)]
    assert layers
    for layer in layers:
        for name, p in layer.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (type(layer).__name__, name)


# --- one layer: params and MACs against the papers' formulas ---------------------------------


def test_skconv_params_and_macs_follow_the_sk_paper() -> None:
    c, m, g, d = 128, 2, 32, 32  # d = max(C/r, L) = max(128/16, 32)
    layer = sk(c)
    assert isinstance(layer, SKConv) and layer.fuse[0].out_features == d
    paths = m * (9 * c * c // g + 2 * c)  # M grouped 3x3 convs + their BN
    assert _n_params(layer) == paths + c * d + 2 * d + d * m * c  # fuse FC + BN, M select FCs
    hw = 8
    macs = _macs(layer, torch.randn(1, c, hw, hw))
    assert macs["conv"] == m * 9 * c * c // g * hw * hw
    assert macs["linear"] == c * d + d * m * c


def test_aaconv_params_follow_the_aa_paper() -> None:
    f, nh, h, w = 64, 8, 16, 16
    dk, dv = aa_depths(f, key_ratio=0.2, value_ratio=0.1, heads=nh, min_key_dims=20)
    assert (dk, dv) == (160, 8)  # kappa F = 12.8 -> 20 per head; upsilon F = 6.4 -> 1 per head
    layer = AAConv(f, f, 1, (h, w), dk, dv, nh)
    conv = 9 * f * (f - dv)  # 3x3 convolution to F_out - d_v
    qkv = f * (2 * dk + dv)  # 1x1 W_q, W_k, W_v
    rel = (2 * h - 1 + 2 * w - 1) * dk // nh  # r^H, r^W per relative offset, shared by heads
    assert _n_params(layer) == conv + qkv + dv * dv + rel
    dk2, dv2 = aa_depths(128, 0.2, 0.1, 8, min_key_dims=1)
    assert (dk2, dv2) == (24, 16)  # 25.6 and 12.8, rounded to multiples of Nh


def test_aaconv_counted_attention_macs_equal_the_formula() -> None:
    f, nh, h, w = 64, 8, 8, 8
    dk, dv = aa_depths(f, 0.2, 0.1, nh, 20)
    hw = h * w
    macs = _macs(AAConv(f, f, 1, (h, w), dk, dv, nh), torch.randn(1, f, h, w))
    assert macs["scaled_dot_product_attention"] == hw * hw * (dk + dv)  # Q K^T and A V
    assert macs["matmul"] == hw * (h + w) * dk  # relative logits, rows and columns
    assert macs["conv"] == (9 * f * (f - dv) + f * (2 * dk + dv) + dv * dv) * hw


def test_sasa_layer_params_and_counted_attention_macs_equal_the_formula() -> None:
    c, k, h, w = 64, 7, 8, 8
    layer = sasa(c, kernel_size=k)
    assert _n_params(layer) == 3 * c * c + k * c  # W_Q, W_K, W_V and row/column embeddings
    macs = _macs(layer, torch.randn(1, c, h, w))
    # q.k and attention.v over k*k windows, plus k row and k column half-width logits
    assert macs["matmul"] == (2 * k * k * c + k * c) * h * w
    assert macs["conv"] == 3 * c * c * h * w


# --- reference implementations ----------------------------------------------------------------


def test_aa_relative_logits_equal_a_direct_sum() -> None:
    layer = AAConv(16, 16, 1, (5, 6), key_dims=16, value_dims=8, heads=2)
    h, w = 4, 5  # smaller than built: the central offsets are used
    q = torch.randn(1, 2, h * w, 8)
    got = layer.relative_logits(q, h, w).view(1, 2, h, w, h, w)
    qs = q.view(1, 2, h, w, 8) * 8**-0.5
    for x, y, u, v in [(0, 0, 3, 4), (2, 1, 0, 3), (3, 4, 3, 4), (1, 3, 2, 0)]:
        r = layer.rel_h[u - x + 5 - 1] + layer.rel_w[v - y + 6 - 1]
        torch.testing.assert_close(got[0, :, x, y, u, v], qs[0, :, x, y] @ r)


def test_sasa_equals_a_direct_window_sum_with_borders_masked() -> None:
    layer = LocalSelfAttention(8, 8, kernel_size=3, heads=2).eval()
    x = torch.randn(1, 8, 5, 5)
    out = layer(x)
    q, k, v = (t.view(2, 4, 5, 5) for t in layer.qkv(x).chunk(3, 1))
    for i, j in [(0, 0), (2, 3), (4, 4)]:
        for head in range(2):
            logits, values = [], []
            for a in (-1, 0, 1):
                for b in (-1, 0, 1):
                    if 0 <= i + a < 5 and 0 <= j + b < 5:
                        r = torch.cat([layer.rel_row[a + 1, head], layer.rel_col[b + 1, head]])
                        qij = q[head, :, i, j]
                        logits.append(qij @ k[head, :, i + a, j + b] + qij @ r)
                        values.append(v[head, :, i + a, j + b])
            want = torch.softmax(torch.stack(logits), 0) @ torch.stack(values)
            torch.testing.assert_close(out[0, head * 4:(head + 1) * 4, i, j], want)


# --- whole networks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "kind", "batch"),
    [("sk", SKConv, 2), ("aa", AAConv, 8), ("sasa", LocalSelfAttention, 8)],
)
def test_cifar_resnet50_shape_gradients_and_memory(
    method: str, kind: type[nn.Module], batch: int
) -> None:
    """Output shape at batch 2; forward + backward on the CPU (at batch 8 for the attention
    methods, whose memory grows with the map size) reaching every new parameter, with the
    step's own peak of tensor memory under 4 GiB (``harness.bench.memory_of``, from the
    allocation sizes; measured: SK 0.14, AA 1.5, SASA 2.3 GiB)."""
    model = build_model("resnet50", form="cifar", attention=method).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    peak, _ = memory_of(lambda: _grads_reach(model, kind, torch.randn(batch, 3, 32, 32)))
    assert peak < 4 * 2**30, f"{method}: the step's peak tensor memory is {peak / 2**30:.2f} GiB"


def test_sknet_unit_on_resnext29_gets_gradients() -> None:
    model = build_model("resnext29_8x64d", form="cifar", attention="sk")
    unit = model.stages[0][0].conv2
    assert isinstance(unit, SKConv) and [p[0].groups for p in unit.paths] == [32, 32]
    x = torch.randn(2, unit.paths[0][0].in_channels, 8, 8)
    unit.train()(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in unit.parameters())


def test_sk_variants_and_stride_placement() -> None:
    resnext = build_model("resnext50_32x4d", form="imagenet", attention="sk")
    block = resnext.stages[1][0]
    assert block.conv1.stride == (1, 1)  # the stride moved to the SK convolution
    assert [p[0].dilation for p in block.conv2.paths] == [(1, 1), (2, 2)]  # SKNet: 3x3, "5x5"
    assert {p[0].stride for p in block.conv2.paths} == {(2, 2)}
    resnet = build_model("resnet50", form="imagenet", attention="sk")
    paths = resnet.stages[2][1].conv2.paths
    assert [p[0].groups for p in paths] == [1, 32]  # ResNet + SK: dense 3x3 + 32-group 3x3
    assert resnet.stages[2][1].conv2.fuse[0].out_features == 256 // 16  # d = C/16, no floor
    kept = build_model("resnet50", form="cifar", attention="sk", stride_on="block")
    assert kept.stages[1][0].conv1.stride == (2, 2)
    assert kept.stages[1][0].conv2.paths[0][0].stride == (1, 1)


def test_aa_augments_imagenet_resnets_from_28x28_and_every_cifar_wrn_block() -> None:
    model = build_model("resnet50", form="imagenet", attention="aa")
    kinds = [type(stage[0].conv2) for stage in model.stages]
    assert kinds == [nn.Conv2d, AAConv, AAConv, AAConv]  # AA §4.2: the last three stages
    assert [stage[0].conv2.size for stage in model.stages[1:]] == [(28, 28), (14, 14), (7, 7)]
    wrn = build_model("wrn28_10", form="cifar", attention="aa")
    assert all(isinstance(b.conv1, AAConv) for stage in wrn.stages for b in stage)
    assert wrn.stages[1][0].conv1.stride == 2  # strided: attention on the pooled input
    assert wrn.stages[1][0].conv1.size == (16, 16)


def test_sasa_replaces_every_bottleneck_3x3_and_pools_strided_ones() -> None:
    model = build_model("resnet50", form="cifar", attention="sasa")
    blocks = [b for stage in model.stages for b in stage]
    assert all(isinstance(b.conv2, LocalSelfAttention) for b in blocks)
    assert isinstance(model.stages[1][0].conv2.pool, nn.AvgPool2d)
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
                   for b in blocks for m in b.modules())


@pytest.mark.parametrize("method", ["sk", "aa", "sasa"])
def test_each_combines_with_ba2m(method: str) -> None:
    model = build_model("resnet50", form="cifar", attention=f"{method}+ba2m")
    assert sum(type(m).__name__ == "BA2M" for m in model.modules()) == len(model.stages)
    assert any(isinstance(m, (SKConv, AAConv, LocalSelfAttention)) for m in model.modules())


def test_factories_build_standalone_layers() -> None:
    x = torch.randn(2, 64, 8, 8)
    for make in (sk, aa, sasa):
        assert make(64).eval()(x).shape == x.shape


@pytest.mark.parametrize(
    ("arch", "method", "options"),
    [("preresnet110", "sk", {}), ("preresnet110", "sasa", {}), ("resnet50", "sk", {"variant": "x"}),
     ("resnet50", "aa", {"stages": [1], "max_size": 8})],
)
def test_bad_requests_raise_model_config_errors(arch: str, method: str, options: dict) -> None:
    with pytest.raises(ModelConfigError):
        build_model(arch, form="cifar", attention=method, **options)


def test_bottleneck_is_the_block_that_is_rebuilt() -> None:
    model = build_model("resnet50", form="cifar", attention="sasa", stages=[4])
    assert isinstance(model.stages[3][0], Bottleneck)
    assert isinstance(model.stages[0][0].conv2, nn.Conv2d)  # other stages untouched
