"""The ResNet-family zoo: shapes, torchvision equivalence, placement, errors."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch
import torchvision

from harness.costs.counting import count, count_params
from models import BA2M, ModelConfigError, architectures, build_model
from models.backbones import RESIDUAL_TAIL
from models.registry import INPUT_SIZE


@pytest.mark.parametrize(("form", "arch"), architectures())
def test_every_backbone_forward_at_batch_2(form: str, arch: str) -> None:
    m = build_model(arch, form=form, num_classes=7).eval()
    size = INPUT_SIZE[form]
    with torch.no_grad():
        assert m(torch.randn(2, 3, size, size)).shape == (2, 7)


@pytest.mark.parametrize(("ours", "theirs"), [("resnet18", "resnet18"), ("resnet50", "resnet50"),
                                              ("resnext50_32x4d", "resnext50_32x4d")])
def test_same_parameters_as_torchvision(ours: str, theirs: str) -> None:
    a = build_model(ours, form="imagenet")
    b = getattr(torchvision.models, theirs)()
    assert sorted(p.shape for p in a.parameters()) == sorted(p.shape for p in b.parameters())


def test_bottleneck_stride_option_reproduces_torchvision_flops() -> None:
    """Stride on the 3x3 (v1.5) costs +5.9 % FLOPs on ResNet-50; on the 1x1 (v1) it does not."""
    v1 = count(build_model("resnet50", form="imagenet"), 224)
    v15 = count(build_model("resnet50", form="imagenet",
                            arch_options={"bottleneck_stride": "3x3"}), 224)
    assert v1.params == v15.params
    assert round(v1.flops_g, 2) == 3.86
    assert 1.05 < v15.macs / v1.macs < 1.07


@pytest.mark.parametrize("position", ["between", "inside"])
def test_ba2m_placement_at_any_stage_subset(position: str) -> None:
    base = count_params(build_model("resnet50", form="cifar"))
    previous: dict[frozenset[int], int] = {frozenset(): base}
    for k in range(1, 5):
        for subset in combinations(range(1, 5), k):
            m = build_model("resnet50", form="cifar", attention="ba2m", stages=subset,
                            position=position)
            n_modules = sum(isinstance(x, BA2M) for x in m.modules())
            assert n_modules == (k if position == "between" else
                                 sum((3, 4, 6, 3)[s - 1] for s in subset))
            params = count_params(m)
            for drop in subset:  # adding a block's module adds parameters
                assert params > previous[frozenset(subset) - {drop}]
            previous[frozenset(subset)] = params


def test_inside_places_the_module_on_the_residual_branch() -> None:
    m = build_model("resnet50", form="cifar", attention="ba2m", stages=[2], position="inside",
                    inside_scope="last")
    last = m.stages[1][-1]
    tail = getattr(last, RESIDUAL_TAIL[type(last)])
    assert isinstance(tail[1], BA2M) and tail[1].channels == 512
    assert sum(isinstance(x, BA2M) for x in m.modules()) == 1
    with torch.no_grad():
        assert m.train()(torch.randn(4, 3, 32, 32)).shape == (4, 100)


def test_between_module_uses_stage_width() -> None:
    m = build_model("wrn28_10", form="cifar", attention="ba2m")
    assert [a.channels for a in m.after] == [160, 320, 640]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"arch": "resnet1000"}, "unknown imagenet architecture"),
        ({"arch": "resnet50", "form": "mnist"}, "unknown form"),
        ({"arch": "resnet50", "attention": "nonsense"}, "unknown attention method"),
        ({"arch": "resnet50", "attention": "ba2m", "stages": [5]}, "stages"),
        ({"arch": "resnet50", "attention": "ba2m", "stages": []}, "stages"),
        ({"arch": "resnet50", "attention": "ba2m", "position": "above"}, "position"),
        ({"arch": "resnet50", "attention": "ba2m", "reduction": 3}, "does not divide"),
        ({"arch": "resnet50", "attention": "ba2m", "branches": ()}, "at least one branch"),
        ({"arch": "resnet50", "reduction": 16}, "no attention method"),
    ],
)
def test_bad_requests_raise_clear_errors(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        build_model(**kwargs)


def test_model_config_error_is_a_value_error() -> None:
    assert issubclass(ModelConfigError, ValueError)
