"""The BA²M module: shapes, batch weights, equivariance, gradients, options, errors."""

from __future__ import annotations

import pytest
import torch

from models.ba2m import BA2M, BA2MConfigError, reduced_width

BRANCH_SETS = [("ca",), ("lsa",), ("gsa",), ("ca", "lsa"), ("ca", "gsa"), ("lsa", "gsa")]


def _x(n: int = 6, c: int = 64, hw: int = 8) -> torch.Tensor:
    return torch.randn(n, c, hw, hw)


def test_shape_preserved_and_weights_are_a_batch_softmax() -> None:
    m = BA2M(64).train()
    x = _x()
    y = m(x)
    assert y.shape == x.shape
    w = m.weights(x)
    assert w.shape == (6,)
    assert bool((w > 0).all())
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))
    torch.testing.assert_close(y, x + x * w.view(-1, 1, 1, 1))  # excite="residual"
    m.excite = "scale"  # Eq. 13 as printed
    torch.testing.assert_close(m(x), x * m.weights(x).view(-1, 1, 1, 1))


def test_identity_eval_mode_and_batch_eval_mode_differ() -> None:
    x = _x()
    m = BA2M(64, eval_mode="identity").eval()
    torch.testing.assert_close(m(x), x)
    m.eval_mode = "batch"
    assert not torch.allclose(m(x), x)


def test_permuting_the_batch_permutes_the_output() -> None:
    # eval: BN uses running stats, so samples do not interact there
    m = BA2M(64, eval_mode="batch").eval()
    x = _x()
    perm = torch.randperm(6)
    torch.testing.assert_close(m(x)[perm], m(x[perm]))
    m.train()
    torch.testing.assert_close(m(x)[perm], m(x[perm]), rtol=1e-4, atol=1e-6)


def test_gradients_reach_every_branch() -> None:
    m = BA2M(64).train()
    x = _x()
    (m(x) * torch.randn_like(x)).sum().backward()
    for branch in (m.ca, m.lsa, m.gsa):
        grads = [p.grad for p in branch.parameters() if p.requires_grad]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), branch


@pytest.mark.parametrize("branches", BRANCH_SETS)
def test_branch_subsets_build_and_are_smaller(branches: tuple[str, ...]) -> None:
    full = sum(p.numel() for p in BA2M(256).parameters())
    sub = BA2M(256, branches=branches)
    assert sub(_x(c=256)).shape == (6, 256, 8, 8)
    assert sum(p.numel() for p in sub.parameters()) < full


def test_batch_scale_n_gives_mean_weight_one() -> None:
    m = BA2M(64, batch_scale="n").train()
    torch.testing.assert_close(m.weights(_x()).mean(), torch.tensor(1.0))


def test_fused_attention_equals_reference() -> None:
    x = _x(c=64, hw=16)
    fast = BA2M(64, gsa_impl="sdpa", eval_mode="batch").eval()
    ref = BA2M(64, gsa_impl="matmul", eval_mode="batch").eval()
    ref.load_state_dict(fast.state_dict())
    torch.testing.assert_close(fast.gsa(x), ref.gsa(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast(x), ref(x), rtol=1e-4, atol=1e-5)


def test_reduced_width_and_paper_parameter_formula() -> None:
    """Eq. 16 counts: CA 2C²/R, GSA 3C²/R² (grouped by R); LSA per lsa_groups."""
    c, r = 2048, 32
    d = reduced_width(c, r, 32)
    assert d == 64
    m = BA2M(c, reduction=r, min_channels=32)
    ca = sum(p.numel() for n, p in m.ca.named_parameters() if "weight" in n and "bn" not in n)
    assert ca == 2 * c * d
    gsa = sum(p.numel() for p in m.gsa.parameters())
    assert gsa == 3 * c * d // r
    lsa = sum(p.numel() for n, p in m.lsa.named_parameters() if n.startswith("g"))
    assert lsa == 2 * c * d // r + 9 * d * d  # pointwise 1x1s in R groups, dense 3x3
    dense = BA2M(c, reduction=r, lsa_groups="none")
    assert sum(p.numel() for n, p in dense.lsa.named_parameters() if n.startswith("g")) == (
        2 * c * d + 9 * d * d
    )


def test_min_channels_floor() -> None:
    assert reduced_width(256, 32, 32) == 32
    assert reduced_width(256, 32, 1) == 8
    assert reduced_width(16, 32, 32) == 32  # narrower than R: the floor decides


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"branches": ()}, "at least one branch"),
        ({"branches": ("ca", "xyz")}, "unknown BA2M branch"),
        ({"reduction": 3}, "does not divide"),
        ({"reduction": 0}, "positive integer"),
        ({"eval_mode": "sometimes"}, "eval_mode"),
        ({"batch_scale": "x"}, "batch_scale"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs: dict, words: str) -> None:
    with pytest.raises(BA2MConfigError, match=words):
        BA2M(256, **kwargs)


@pytest.mark.parametrize("batch_scale", ["none", "n"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("excite,factor", [("scale", 1.0), ("residual", 2.0)])
def test_a_batch_of_one_has_weight_exactly_one_in_training_and_evaluation(
    batch_scale: str, training: bool, excite: str, factor: float
) -> None:
    m = BA2M(64, batch_scale=batch_scale, excite=excite, eval_mode="batch").train(training)
    x = _x(n=1).requires_grad_()
    y = m(x)  # no BatchNorm over a single sample is reached
    assert torch.equal(y, x * factor)  # w = 1: x under Eq. 13, x + 1·x under residual
    y.sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, factor))


def test_diagnostics_report_the_largest_weight_share_and_reset() -> None:
    m = BA2M(64).train()
    assert m.diagnostics() == {}
    x = _x(n=8)
    shares = []
    for _ in range(3):
        w = m.weights(x).detach()
        shares.append(float(w.max() / w.sum()))
    d = m.diagnostics()
    assert d["max_share_mean"] == pytest.approx(sum(shares) / 3, rel=1e-5)
    assert d["max_share_max"] == pytest.approx(max(shares), rel=1e-5)
    assert 1 / 8 <= d["max_share_mean"] < 1
    assert m.diagnostics() == {}
    m.eval()
    m(x)
    assert m.diagnostics() == {}  # evaluation is not training


def test_diagnostics_show_a_collapsed_batch() -> None:
    m = BA2M(64, branches=("ca",)).train()
    with torch.no_grad():
        m.ca.bn.weight.fill_(50.0)  # a large BN scale spreads the SARs
    m(_x(n=16))
    assert m.diagnostics()["max_share_mean"] > 0.5


def test_channel_attention_has_no_biases_by_default() -> None:
    assert BA2M(64).ca.fc0.bias is None and BA2M(64).ca.fc1.bias is None
    with_bias = BA2M(64, ca_bias=True)
    assert with_bias.ca.fc0.bias is not None and with_bias.ca.fc1.bias is not None
    extra = sum(p.numel() for p in with_bias.parameters()) - sum(
        p.numel() for p in BA2M(64).parameters())
    assert extra == 32 + 64  # d + C


def test_global_branch_is_normalised_before_the_max_by_default() -> None:
    m = BA2M(64, branches=("gsa",)).train()
    assert isinstance(m.gsa_bn, torch.nn.BatchNorm1d)
    x = _x(n=8) * 100
    pooled = m.gsa(x)
    torch.testing.assert_close(m.sar(x), m.gsa_bn(pooled).mean(1))
    standardized = (pooled - pooled.mean(0)) / pooled.var(0, unbiased=False).add(1e-5).sqrt()
    torch.testing.assert_close(m.sar(x), standardized.mean(1), atol=1e-4, rtol=1e-4)
    raw = BA2M(64, branches=("gsa",), gsa_norm="none").train()
    raw.gsa.load_state_dict(m.gsa.state_dict())
    torch.testing.assert_close(raw.sar(x), raw.gsa(x).mean(1))
    assert BA2M(64, branches=("ca",)).gsa_bn is None


def test_standardized_sars_have_zero_mean_and_unit_spread() -> None:
    m = BA2M(64, sar_norm="standardize").train()
    x = _x(n=16)
    w = m.weights(x)
    z = torch.log(w) - torch.log(w).mean()
    torch.testing.assert_close(z.std(unbiased=False), torch.tensor(1.0), atol=1e-3, rtol=0)


def test_width_rounding_where_r_does_not_divide_c() -> None:
    assert reduced_width(1040, 32, 32) == 32
    assert reduced_width(1040, 32, 32, "ceil") == 33
    assert BA2M(1040, width_round="ceil").width == 33


def test_gsa_pool_output_uses_every_reduced_channel_where_d_exceeds_c() -> None:
    m = BA2M(16, branches=("gsa",)).train()  # d = 32 > C = 16, as ResNet-20's stage 1
    assert m.width == 32 and m.gsa.out == "pool"
    x = _x(n=4, c=16)
    m.gsa(x).sum().backward()
    assert bool((m.gsa.h.weight.grad.abs().sum((1, 2, 3)) > 0).all())  # all 32 get gradient
    nearest = BA2M(16, branches=("gsa",), gsa_out="repeat").train()
    nearest.gsa(x).sum().backward()
    dead = nearest.gsa.h.weight.grad.abs().sum((1, 2, 3)) == 0
    assert int(dead.sum()) == 16  # "repeat" keeps every other channel only
    wide = BA2M(64, branches=("gsa",), gsa_impl="matmul").eval()  # d = 32 < C = 64
    x = _x(n=3)
    pooled = wide.gsa(x)
    wide.gsa.out = "repeat"
    torch.testing.assert_close(wide.gsa(x), pooled)  # where d <= C, pool is repeat
    z = torch.randn(3, 32)
    torch.testing.assert_close(
        torch.nn.functional.adaptive_avg_pool1d(z.unsqueeze(1), 64).squeeze(1),
        z.repeat_interleave(2, dim=1))
