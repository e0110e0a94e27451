"""The lightweight CIFAR networks of Table X: shapes, BA²M between stages, one training step,
and their counted params/FLOPs (the numbers documented in docs/lightweight.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchvision
from torch import nn

from harness.costs.counting import count, count_params
from models import BA2M, architectures, build_model
from models.lightweight import CIFAR_LIGHTWEIGHT
from models.registry import num_stages

ARCHS = list(CIFAR_LIGHTWEIGHT)

#: arch -> (stage widths, params, MACs at 32x32 with 100 classes), as in docs/lightweight.md.
DOCUMENTED = {
    "densenet100_bc": ([108, 150, 342], 800_032, 287_960_472),
    "shufflenetv2": ([116, 232, 464], 1_356_104, 45_094_272),
    "mobilenetv2": ([16, 24, 32, 96, 320], 2_351_972, 69_005_312),
    "efficientnet_b0": ([16, 24, 40, 112, 320], 4_135_648, 32_094_592),
}

#: The largest reduction R <= 32 that divides every stage width wider than R (what
#: ``models.ba2m.reduced_width`` accepts today); only MobileNetV2 takes the default R = 32.
WORKING_R = {"densenet100_bc": 6, "shufflenetv2": 4, "mobilenetv2": 32, "efficientnet_b0": 8}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These models are tiny: intra-op threads only contend (10x slower on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registered_as_cifar_architectures() -> None:
    assert {("cifar", a) for a in ARCHS} <= set(architectures("cifar"))
    assert [num_stages(a, "cifar") for a in ARCHS] == [3, 3, 5, 5]


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_at_batch_2_and_documented_counts(arch: str) -> None:
    m = build_model(arch, form="cifar").eval()
    widths, params, macs = DOCUMENTED[arch]
    assert m.stage_channels == widths
    with torch.no_grad():
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    c = count(m, 32)
    assert (c.params, c.macs) == (params, macs)


@pytest.mark.parametrize("arch", ARCHS)
def test_ba2m_after_every_stage_and_one_sgd_step(arch: str) -> None:
    m = build_model(arch, form="cifar", attention="ba2m", reduction=WORKING_R[arch])
    modules = [x for x in m.modules() if isinstance(x, BA2M)]
    assert len(modules) == len(m.stages)
    assert [a.channels for a in m.after] == m.stage_channels
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in m.parameters()]
    out = m.train()(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 100)
    loss = nn.functional.cross_entropy(out, torch.arange(4))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in m.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))


@pytest.mark.parametrize("arch", ARCHS)
def test_ba2m_with_the_default_reduction(arch: str) -> None:
    m = build_model(arch, form="cifar", attention="ba2m")
    assert [a.width for a in m.after] == [32] * len(m.stages)


@pytest.mark.parametrize(
    ("arch", "theirs"),
    [
        ("shufflenetv2", torchvision.models.shufflenet_v2_x1_0),
        ("mobilenetv2", torchvision.models.mobilenet_v2),
        ("efficientnet_b0", torchvision.models.efficientnet_b0),
    ],
)
def test_same_parameters_as_torchvision(arch: str, theirs: type[nn.Module]) -> None:
    """Only strides change in the CIFAR forms, so the parameters are torchvision's."""
    ours = build_model(arch, form="cifar")
    tv = theirs(num_classes=100)
    assert sorted(p.shape for p in ours.parameters()) == sorted(p.shape for p in tv.parameters())


def test_densenet_is_torchvisions_densenet_bc_with_a_3x3_stem() -> None:
    tv = torchvision.models.DenseNet(12, (16, 16, 16), 24, num_classes=100)
    imagenet_stem = count_params(tv.features[:2])  # 7x7 conv and its BN
    assert count_params(build_model("densenet100_bc", form="cifar")) == (
        count_params(tv) - imagenet_stem + 3 * 3 * 3 * 24
    )
