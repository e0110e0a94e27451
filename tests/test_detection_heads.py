"""OHEM RoI heads (Table IV) and the softmax RetinaNet (Table III) of issue #15.

OHEM: on hand-built candidates whose box-head outputs are rows of a table, the RoIs that get a
gradient are exactly each image's highest-loss positives (at most 25 %) and then highest-loss
negatives (512 in all, fewer when there are fewer candidates), ranked by classification + box
loss or by classification alone; the ranking pass runs without gradient; the loss is the Fast
R-CNN loss of the selected RoIs. Softmax RetinaNet: the classification loss equals a hand
computation (foreground, background, an anchor in the ignore band left out, per-image
foreground normalisation), the initial background probability is the prior, and one train step
and one evaluation run, with scores that are softmax probabilities of the object classes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection._utils import BoxCoder

from harness.training.shapes import as_tensors, shapes_dataset
from models.detection import build_detector
from models.detection_heads import OHEMRoIHeads, SoftmaxClassificationHead, SoftmaxRetinaNet
from models.registry import ModelConfigError

C = 3  # background + 2 object classes


class _Lookup(nn.Module):
    """box_roi_pool: each RoI's row of a learnable table, found by its box."""

    def __init__(self, boxes: torch.Tensor) -> None:
        super().__init__()
        self.boxes = boxes
        self.table = nn.Parameter(torch.randn(len(boxes), 5 * C))

    def forward(self, features, proposals, image_shapes):
        rois = torch.cat(proposals)
        hit = (rois[:, None] == self.boxes[None]).all(-1)
        assert bool((hit.sum(1) == 1).all())
        return self.table[hit.float().argmax(1)]


class _Split(nn.Module):
    """box_predictor: class logits = the first C columns, box regression = the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.grad_enabled: list[bool] = []

    def forward(self, x):
        self.grad_enabled.append(torch.is_grad_enabled())
        return x[:, :C], x[:, C:]


def _image(gt: list[float], label: int, n_pos: int, n_neg: int, y: float):
    """gt box, label; candidates: n_pos shifted copies of the gt (IoU > 0.8) and n_neg boxes
    far from it (IoU 0); the ground truth itself is a candidate too (RoIHeads adds it)."""
    x1, y1, x2, y2 = map(float, gt)
    pos = [[x1 + 0.01 * (k + 1), y1, x2 + 0.01 * (k + 1), y2] for k in range(n_pos)]
    neg = [[100 + 0.1 * k, y, 110 + 0.1 * k, y + 10] for k in range(n_neg)]
    return torch.tensor([x1, y1, x2, y2]), torch.tensor(pos + neg).reshape(-1, 4), label


@pytest.mark.parametrize("size, n_pos, n_neg, rank_by, expect", [
    (8, 4, 10, "cls+box", [(2, 6), (2, 6)]),      # both quotas full
    (8, 4, 3, "cls+box", [(2, 3), (2, 3)]),       # too few negatives: fewer in all
    (8, 0, 10, "cls", [(1, 7), (1, 7)]),          # only the gt is positive: more negatives
    (512, 299, 600, "cls+box", [(128, 384), (128, 384)]),  # the paper's 512 / 25 %
    (512, 50, 100, "cls", [(51, 100), (51, 100)]),  # fewer candidates than 512
])
def test_ohem_keeps_the_highest_loss_rois(size, n_pos, n_neg, rank_by, expect) -> None:
    torch.manual_seed(0)
    images = [_image([0, 0, 20, 20], 1, n_pos, n_neg, 100),
              _image([40, 40, 60, 60], 2, n_pos, n_neg, 150)]
    all_boxes = torch.cat([torch.cat([p, g[None]]) for g, p, _ in images])
    pool, predictor = _Lookup(all_boxes), _Split()
    heads = OHEMRoIHeads(pool, nn.Identity(), predictor, 0.5, 0.5, size, 0.25, None, 0.05, 0.5,
                         100, rank_by=rank_by)
    heads.train()
    targets = [{"boxes": g[None], "labels": torch.tensor([label])} for g, _, label in images]
    _, losses = heads({}, [p for _, p, _ in images], [(200, 200)] * 2, targets)
    assert predictor.grad_enabled == [False, True]  # ranking without gradient, then the loss

    coder, chosen, cls_terms, box_terms = BoxCoder((10.0, 10.0, 5.0, 5.0)), [], [], []
    for (gt, proposals, label), (want_pos, want_neg) in zip(images, expect):
        cand = torch.cat([proposals, gt[None]])
        rows = (cand[:, None] == all_boxes[None]).all(-1).float().argmax(1)
        positive = torch.cat([torch.arange(n_pos), torch.tensor([len(cand) - 1])])
        negative = torch.arange(n_pos, n_pos + n_neg)
        labels = torch.zeros(len(cand), dtype=torch.long)
        labels[positive] = label
        out = pool.table.detach()[rows]
        cls = F.cross_entropy(out[:, :C], labels, reduction="none")
        target = coder.encode_single(gt.expand(len(cand), 4), cand)
        box = F.smooth_l1_loss(out[:, C:].reshape(-1, C, 4)[torch.arange(len(cand)), labels],
                               target, beta=1 / 9, reduction="none").sum(1)
        box[negative] = 0
        rank = cls + box if rank_by == "cls+box" else cls
        pos = positive[rank[positive].argsort(descending=True)[:want_pos]]
        neg = negative[rank[negative].argsort(descending=True)[:want_neg]]
        assert len(pos) == want_pos and len(neg) == want_neg
        assert want_pos <= 0.25 * size and want_pos + want_neg <= size
        chosen += rows[torch.cat([pos, neg])].tolist()
        cls_terms.append(cls[torch.cat([pos, neg])])
        box_terms.append(box[pos])

    sum(losses.values()).backward()
    got = torch.where(pool.table.grad.abs().sum(1) > 0)[0].tolist()
    assert sorted(got) == sorted(chosen)  # gradient exactly through the selected RoIs
    n = sum(len(c) for c in cls_terms)
    assert losses["loss_classifier"].item() == pytest.approx(torch.cat(cls_terms).mean().item(),
                                                             rel=1e-5)
    assert losses["loss_box_reg"].item() == pytest.approx(torch.cat(box_terms).sum().item() / n,
                                                          rel=1e-5)


@pytest.fixture(scope="module")
def batch():
    items = [as_tensors(item) for item in shapes_dataset(2, size=64, seed=1)]
    return [i for i, _ in items], [{k: v for k, v in t.items() if k != "masks"}
                                   for _, t in items]


def _step(model, images, targets) -> dict[str, torch.Tensor]:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.9)
    model.train()
    losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 35)
    opt.step()
    return losses


def test_ohem_faster_rcnn_train_step(batch) -> None:
    torch.manual_seed(0)
    model = build_detector("faster_rcnn", 4, "resnet18", norm="train", frozen_stages=0,
                           fpn_channels=32, min_size=64, max_size=64, sampler="ohem",
                           box_detections_per_img=10)
    assert isinstance(model.roi_heads, OHEMRoIHeads)
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 512
    losses = _step(model, *batch)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness",
                           "loss_rpn_box_reg"}
    assert model.roi_heads.box_predictor.cls_score.weight.grad is not None
    model.eval()
    with torch.no_grad():
        assert len(model(batch[0])) == 2


def test_options_belong_to_their_detector() -> None:
    with pytest.raises(ModelConfigError, match="ohem"):
        build_detector("retinanet", 4, "resnet18", sampler="ohem")
    with pytest.raises(ModelConfigError, match="softmax"):
        build_detector("faster_rcnn", 4, "resnet18", cls_loss="softmax")


def _nll(row: list[float], c: int) -> float:
    return math.log(sum(math.exp(v) for v in row)) - row[c]


def test_softmax_loss_equals_hand_computation() -> None:
    backbone = nn.Identity()
    backbone.out_channels = 8
    model = SoftmaxRetinaNet(backbone, C)
    gt = [0.0, 0, 10, 10]
    anchors = [torch.tensor([gt, [0, 0, 10, 22], [30, 30, 40, 40], [0, 0, 10, 30]]),
               torch.tensor([gt, [20, 20, 30, 30], [0, 0, 10, 22], [50, 50, 60, 60]])]
    # image 0: fg (label 2), IoU 0.45 (ignored), bg, IoU 0.33 (bg);
    # image 1: fg (label 1), fg (label 2), ignored, bg
    targets = [{"boxes": torch.tensor([gt]), "labels": torch.tensor([2])},
               {"boxes": torch.tensor([gt, [20, 20, 30, 30]]), "labels": torch.tensor([1, 2])}]
    torch.manual_seed(3)
    logits = torch.randn(2, 4, C)
    losses = model.compute_loss(targets, {"cls_logits": logits,
                                          "bbox_regression": torch.zeros(2, 4, 4)}, anchors)
    l0, l1 = logits.tolist()
    image0 = (_nll(l0[0], 2) + _nll(l0[2], 0) + _nll(l0[3], 0)) / 1
    image1 = (_nll(l1[0], 1) + _nll(l1[1], 2) + _nll(l1[3], 0)) / 2
    assert losses["classification"].item() == pytest.approx((image0 + image1) / 2, rel=1e-6)


def test_softmax_initial_probabilities_are_the_prior() -> None:
    head = SoftmaxClassificationHead(8, 9, 21, prior_probability=0.01)
    bias_probs = head.cls_logits.bias.view(9, 21).softmax(-1)
    assert torch.allclose(bias_probs[:, 0], torch.full((9,), 0.99))
    assert torch.allclose(bias_probs[:, 1:], torch.full((9, 20), 0.01 / 20))
    torch.manual_seed(0)
    model = build_detector("retinanet", 4, "resnet18", norm="train", frozen_stages=0,
                           fpn_channels=32, min_size=64, max_size=64, cls_loss="softmax").eval()
    with torch.no_grad():
        features = list(model.backbone(torch.randn(1, 3, 64, 64)).values())
        probs = model.head.classification_head(features).softmax(-1)
    assert probs.shape[-1] == 4
    assert torch.allclose(probs[..., 0], torch.tensor(0.99), atol=1e-3)
    assert torch.allclose(probs[..., 1:], torch.tensor(0.01 / 3), atol=1e-3)


def test_softmax_retinanet_step_and_eval(batch) -> None:
    torch.manual_seed(0)
    model = build_detector("retinanet", 4, "resnet18", norm="train", frozen_stages=0,
                           fpn_channels=32, min_size=64, max_size=64, cls_loss="softmax",
                           score_thresh=0.0, detections_per_img=10)
    assert isinstance(model.head.classification_head, SoftmaxClassificationHead)
    assert set(_step(model, *batch)) == {"classification", "bbox_regression"}
    captured = []
    model.head.classification_head.register_forward_hook(
        lambda module, inputs, output: captured.append(output))
    model.eval()
    with torch.no_grad():
        out = model(batch[0])
    probs = captured[0].softmax(-1)  # (images, anchors, K + 1), background column 0
    assert torch.allclose(probs.sum(-1), torch.tensor(1.0))
    for image, o in enumerate(out):
        assert len(o["scores"]) == 10
        assert bool(((o["scores"] >= 0) & (o["scores"] <= 1)).all())
        assert bool(((o["labels"] >= 1) & (o["labels"] <= 3)).all())
        for score, label in zip(o["scores"], o["labels"]):
            # the score is the softmax probability of its class at some anchor, and that
            # anchor's background and other classes make up the rest of 1
            hit = torch.isclose(probs[image, :, label], score, rtol=0, atol=1e-7)
            assert bool(hit.any())
            row = probs[image, torch.where(hit)[0][0]]
            assert (row[0] + row[1:].sum()).item() == pytest.approx(1.0, abs=1e-6)
