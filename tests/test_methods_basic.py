"""SE, SRM, SGE, GE, GC, BAM and CBAM: shapes, gradients, parameter counts against each
method's own paper, placement in ResNets, one training step, and combination with BA²M."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from models import build_model
from models.ba2m import BA2M
from models.methods.bam import BAM
from models.methods.cbam import CBAM
from models.methods.gc import GlobalContext
from models.methods.ge import GatherExcite
from models.methods.se import SqueezeExcite
from models.methods.sge import SpatialGroupEnhance
from models.methods.srm import StyleRecalibration

METHODS = ("se", "srm", "sge", "ge", "gc", "bam", "cbam")
CLASSES = {
    "se": SqueezeExcite, "srm": StyleRecalibration, "sge": SpatialGroupEnhance,
    "ge": GatherExcite, "gc": GlobalContext, "bam": BAM, "cbam": CBAM,
}
HW = 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared, busy CPU, two threads wait on each other and a
    ResNet-50 step takes 20x longer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _module(name: str, channels: int, **options: object) -> nn.Module:
    if name == "ge":
        return GatherExcite(channels, (HW, HW), **options)
    return CLASSES[name](channels, **options)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", METHODS)
def test_shape_preserved(name: str) -> None:
    m = _module(name, 64).train()
    x = torch.randn(2, 64, HW, HW)
    assert m(x).shape == x.shape
    assert m.eval()(x).shape == x.shape


@pytest.mark.parametrize("name", METHODS)
def test_gradients_reach_every_parameter(name: str) -> None:
    # batch 4: over a batch of 2, a BN on pooled (N, C) statistics outputs ±1 whatever its
    # input, so the layers before it get (almost) no gradient (SRM, BAM, GE-θ)
    options = {"variant": "theta_plus"} if name == "ge" else {}
    m = _module(name, 64, **options).train()
    x = torch.randn(4, 64, HW, HW, requires_grad=True)
    (m(x) * torch.randn_like(x)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


C, R = 256, 16
D = C // R
#: Parameters of one module at C = 256, r = 16, from each method's paper (biases included).
PAPER_PARAMS = {
    # SE: W1 (C -> C/r) + b1, W2 (C/r -> C) + b2
    "se": (dict(), 2 * C * D + D + C),
    # SRM: CFC (2 weights per channel) + BN (2 per channel)
    "srm": (dict(), 2 * C + 2 * C),
    # SGE: (γ, β) per group, G = 64
    "sge": (dict(), 2 * 64),
    # GE-θ: depth-wise H x W kernel per channel + BN; GE-θ⁻: none; GE-θ⁺: + SE-like excite
    "ge": (dict(), C * HW * HW + 2 * C),
    # GC: W_k (C -> 1) + b, W_v1 (C -> C/r) + b, LayerNorm(C/r), W_v2 (C/r -> C) + b
    "gc": (dict(), (C + 1) + (C * D + D) + 2 * D + (D * C + C)),
    # BAM: channel MLP C -> C/r -> C + BN(C); spatial 1x1 C -> C/r, two 3x3 C/r -> C/r,
    # 1x1 C/r -> 1 (all with biases) + BN(1)
    "bam": (dict(), (C * D + D + D * C + C + 2 * C)
            + (C * D + D + 2 * (9 * D * D + D) + D + 1 + 2)),
    # CBAM: shared MLP C -> C/r -> C, 7x7 conv 2 -> 1 with bias
    "cbam": (dict(), 2 * C * D + D + C + 2 * 49 + 1),
}
VARIANT_PARAMS = [
    ("ge", dict(variant="theta_minus"), 0),
    ("ge", dict(variant="theta_plus"), C * HW * HW + 2 * C + 2 * C * D + D + C),
    # BAM as its public code: BN + ReLU after each hidden layer, none on the outputs
    ("bam", dict(norm="code"), (C * D + D + 2 * D + D * C + C)
     + (C * D + D + 2 * D + 2 * (9 * D * D + D + 2 * D) + D + 1)),
    ("cbam", dict(spatial_bn=True), 2 * C * D + D + C + 2 * 49 + 2),
    ("se", dict(reduction=8), 2 * C * (C // 8) + C // 8 + C),
]


@pytest.mark.parametrize("name", METHODS)
def test_parameter_count_is_the_papers_formula(name: str) -> None:
    options, expected = PAPER_PARAMS[name]
    assert _params(_module(name, C, **options)) == expected


@pytest.mark.parametrize(("name", "options", "expected"), VARIANT_PARAMS)
def test_parameter_count_of_variants(name: str, options: dict, expected: int) -> None:
    assert _params(_module(name, C, **options)) == expected


def _count(model: nn.Module, cls: type[nn.Module]) -> int:
    return sum(isinstance(m, cls) for m in model.modules())


@pytest.mark.parametrize("name", METHODS)
def test_placement_in_resnet50(name: str) -> None:
    model = build_model("resnet50", form="cifar", attention=name)
    assert _count(model, CLASSES[name]) == (3 if name == "bam" else 16)
    if name == "bam":  # after stages 1, 2, 3, at their output widths
        widths = [m.channel.fc1.out_features for m in model.after if isinstance(m, BAM)]
        assert widths == [256, 512, 1024] and isinstance(model.after[3], nn.Identity)
    else:  # on the residual branch, after bn3, at the block's output width
        tail = model.stages[2][0].bn3
        assert isinstance(tail, nn.Sequential) and isinstance(tail[1], CLASSES[name])


def test_bam_goes_after_every_stage_but_the_last_on_three_stage_networks() -> None:
    model = build_model("resnext29_8x64d", form="cifar", attention="bam", stages=(1, 2))
    assert _count(model, BAM) == 2


def test_bam_default_placement_on_three_stage_networks() -> None:
    model = build_model("resnext29_8x64d", form="cifar", attention="bam")
    assert _count(model, BAM) == 2


def test_ge_is_sized_to_each_feature_map() -> None:
    model = build_model("resnet18", form="imagenet", attention="ge")
    sizes = [m.feature_size for m in model.modules() if isinstance(m, GatherExcite)]
    assert sizes == [(56, 56)] * 2 + [(28, 28)] * 2 + [(14, 14)] * 2 + [(7, 7)] * 2
    model = build_model("resnet20", form="cifar", attention="ge")
    sizes = [m.feature_size for m in model.modules() if isinstance(m, GatherExcite)]
    assert sizes == [(32, 32)] * 3 + [(16, 16)] * 3 + [(8, 8)] * 3


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(("arch", "form"), [("resnet50", "cifar"), ("resnet18", "imagenet")])
def test_one_sgd_step(name: str, arch: str, form: str) -> None:
    size = 16 if form == "cifar" else 64  # small inputs keep the test fast on a CPU
    options = {"input_size": size} if name == "ge" else {}
    model = build_model(arch, form=form, attention=name, num_classes=10, **options).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(2, 3, size, size), torch.tensor([1, 3])
    loss = nn.functional.cross_entropy(model(x), y)
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", METHODS)
def test_combination_with_ba2m_builds(name: str) -> None:
    model = build_model("resnet50", form="cifar", attention=f"{name}+ba2m")
    assert _count(model, CLASSES[name]) == (3 if name == "bam" else 16)
    assert _count(model, BA2M) == 4


def test_bam_combine_options_differ() -> None:
    x = torch.randn(4, 64, HW, HW)
    paper = BAM(64).eval()
    code = BAM(64, combine="code").eval()
    code.load_state_dict(paper.state_dict())
    assert not torch.allclose(paper(x), code(x))
    m_c, m_s = paper.channel(x), paper.spatial(x)
    torch.testing.assert_close(paper(x), x * (1 + torch.sigmoid(m_c + m_s)))
    torch.testing.assert_close(code(x), x * (1 + torch.sigmoid(m_c * m_s)))


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match="combine"):
        BAM(64, combine="sum")
    with pytest.raises(ValueError, match="variant"):
        GatherExcite(64, (8, 8), variant="theta+")
    with pytest.raises(ValueError, match="built for"):
        GatherExcite(64, (8, 8))(torch.randn(2, 64, 4, 4))
