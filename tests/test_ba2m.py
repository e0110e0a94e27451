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
    torch.testing.assert_close(y, x * w.view(-1, 1, 1, 1))


def test_batch_of_one_is_identity_in_batch_mode() -> None:
    m = BA2M(64).eval()
    x = _x(n=1)
    torch.testing.assert_close(m(x), x)


def test_identity_eval_mode_and_batch_eval_mode_differ() -> None:
    x = _x()
    m = BA2M(64, eval_mode="identity").eval()
    torch.testing.assert_close(m(x), x)
    m.eval_mode = "batch"
    assert not torch.allclose(m(x), x)


def test_permuting_the_batch_permutes_the_output() -> None:
    m = BA2M(64).eval()  # eval: BN uses running stats, so samples do not interact there
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
    fast = BA2M(64, gsa_impl="sdpa").eval()
    ref = BA2M(64, gsa_impl="matmul").eval()
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
