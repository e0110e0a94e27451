"""The detection backbone and detectors of issue #15: a zoo ResNet in torchvision's layout
(strides and channels of the FPN inputs, a torchvision state dict loads by name), its frozen
parts and BatchNorm modes, BA²M after each stage with the pooled global-spatial branch, and one
train step + one evaluation of Faster R-CNN, Mask R-CNN and RetinaNet, each with and without
BA²M, on the shapes set at 64 px."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.ops import FrozenBatchNorm2d

from harness.training.shapes import as_tensors, shapes_dataset
from models.ba2m import BA2M
from models.detection import DETECTORS, build_detector, fpn_backbone, resnet_body


def _ba2ms(module: nn.Module) -> list[BA2M]:
    return [m for m in module.modules() if isinstance(m, BA2M)]


@pytest.mark.parametrize("arch, widths", [("resnet18", (64, 128, 256, 512)),
                                          ("resnet50", (256, 512, 1024, 2048))])
def test_fpn_inputs_strides_and_channels(arch, widths) -> None:
    body = resnet_body(arch, "ba2m", norm="train", frozen_stages=0)
    assert [type(m) for m in _ba2ms(body)] == [BA2M] * 4
    assert all(isinstance(getattr(body, f"layer{i}")[-1], BA2M) for i in range(1, 5))
    assert all(m.gsa.impl == "pooled" for m in _ba2ms(body))
    fpn = fpn_backbone(body, out_channels=32)
    body.eval()
    with torch.no_grad():
        feats = fpn.body(torch.randn(2, 3, 64, 96))  # IntermediateLayerGetter over layer1..4
    assert [tuple(f.shape) for f in feats.values()] == [
        (2, c, 64 // s, 96 // s) for c, s in zip(widths, (4, 8, 16, 32))]
    with torch.no_grad():
        pyramid = fpn(torch.randn(1, 3, 64, 64))
    assert list(pyramid) == ["0", "1", "2", "3", "pool"]
    assert all(p.shape[1] == 32 for p in pyramid.values())


def test_torchvision_state_dict_loads_by_name() -> None:
    body = resnet_body("resnet18", norm="train", frozen_stages=0)
    missing, unexpected = body.load_state_dict(resnet18().state_dict(), strict=False)
    assert missing == [] and sorted(unexpected) == ["fc.bias", "fc.weight"]


def test_frozen_stem_and_stage1() -> None:
    body = resnet_body("resnet18", "ba2m", frozen_stages=1)
    for name, p in body.named_parameters():
        attention = name.startswith("layer1.2.")  # layer1 = two blocks, then BA²M
        frozen = name.split(".")[0] in ("conv1", "bn1", "layer1") and not attention
        assert p.requires_grad is not frozen, name
    assert all(p.requires_grad for p in _ba2ms(body)[0].parameters())
    none = resnet_body("resnet18", norm="train", frozen_stages=0)
    assert all(p.requires_grad for p in none.parameters())


def test_norm_eval_stays_eval_after_train() -> None:
    body = resnet_body("resnet18", "ba2m", norm="eval", frozen_stages=1).train()
    attention_norms = {id(m) for a in _ba2ms(body) for m in a.modules()}
    norms = [m for m in body.modules() if isinstance(m, nn.BatchNorm2d)
             and id(m) not in attention_norms]
    assert norms and not any(m.training for m in norms)
    assert all(a.training for a in _ba2ms(body))  # BA²M and its own norms train
    layer2 = [m for m in body.layer2.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.weight.requires_grad for m in layer2)  # statistics fixed, affine trained
    before = [m.running_mean.clone() for m in norms]
    body(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))
    trained = resnet_body("resnet18", norm="train", frozen_stages=0).train()
    assert all(m.training for m in trained.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("detector", DETECTORS)
def test_a_detectors_train_keeps_its_backbone_norms_in_eval_mode(detector, batch) -> None:
    """Inside a detector the body is torchvision's IntermediateLayerGetter (which keeps the
    body's children, not the body): ``detector.train()`` must still leave the backbone's norms
    and frozen stages in eval mode, and a training step must not move their statistics."""
    model = build_detector(detector, 4, "resnet18", "ba2m", fpn_channels=16,
                           min_size=64, max_size=64).train()
    attention_norms = {id(m) for a in _ba2ms(model) for m in a.modules()}
    norms = [m for m in model.backbone.body.modules() if isinstance(m, nn.BatchNorm2d)
             and id(m) not in attention_norms]
    assert len(norms) == 20 and not any(m.training for m in norms)
    assert all(a.training for a in _ba2ms(model))
    before = [m.running_mean.clone() for m in norms]
    images, targets = zip(*batch)
    model(list(images), list(targets))
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))
    assert not model.backbone.body.conv1.training and not model.backbone.body.layer1.training


def test_norm_frozen_is_frozen_batchnorm() -> None:
    body = resnet_body("resnet18", "ba2m", norm="frozen", frozen_stages=0)
    attention_norms = {id(m) for a in _ba2ms(body) for m in a.modules()}
    plain = [m for m in body.modules() if isinstance(m, nn.BatchNorm2d)
             and id(m) not in attention_norms]
    assert plain == [] and sum(isinstance(m, FrozenBatchNorm2d) for m in body.modules()) == 20


@pytest.fixture(scope="module")
def batch():
    return [as_tensors(item) for item in shapes_dataset(2, size=64, seed=1)]


@pytest.mark.parametrize("attention", [None, "ba2m"])
@pytest.mark.parametrize("detector", DETECTORS)
def test_one_step_and_one_eval(detector, attention, batch) -> None:
    torch.manual_seed(0)
    top = {"retinanet": "detections_per_img"}.get(detector, "box_detections_per_img")
    model = build_detector(detector, 4, "resnet18", attention, norm="train", frozen_stages=0,
                           fpn_channels=32, min_size=64, max_size=64, **{top: 10})
    assert len(_ba2ms(model)) == (4 if attention else 0)
    images, targets = [b[0] for b in batch], [b[1] for b in batch]
    if detector != "mask_rcnn":
        targets = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.9)
    model.train()
    losses = model(images, targets)
    expected = {"retinanet": {"classification", "bbox_regression"},
                "faster_rcnn": {"loss_classifier", "loss_box_reg", "loss_objectness",
                                "loss_rpn_box_reg"}}
    expected["mask_rcnn"] = expected["faster_rcnn"] | {"loss_mask"}
    assert set(losses) == expected[detector]
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    if attention:
        assert all(p.grad is not None for a in _ba2ms(model) for p in a.ca.parameters())
    torch.nn.utils.clip_grad_norm_(model.parameters(), 35)
    opt.step()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o in out:
        assert {"boxes", "scores", "labels"} <= set(o) and o["boxes"].shape[1:] == (4,)
        assert len(o["boxes"]) <= 10
        if detector == "mask_rcnn":
            assert o["masks"].shape[1:] == (1, 64, 64)
