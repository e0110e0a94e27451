"""The two re-weighting baselines of the paper's detection tables, as torchvision heads.

**OHEM** (Table IV; Shrivastava et al. 2016, as MMDetection v1's ``OHEMSampler`` runs it):
:class:`OHEMRoIHeads` assigns proposals (plus the ground truth) exactly as torchvision's
``RoIHeads`` does, then runs the box head once more without gradient over every candidate
(positives and negatives; proposals in no band are ignored as before), ranks each image's
positives and negatives by their loss and keeps the hardest under the plain sampler's quotas:
``batch_size_per_image`` RoIs (512), at most ``positive_fraction`` (25 %) of them positive, and
fewer when the image has fewer candidates. The normal Fast R-CNN loss is then taken on the
selected RoIs only. ``rank_by="cls"`` (the default: the paper's OHEM row is MMDetection's)
ranks by classification loss alone, as MMDetection v1's ``OHEMSampler.hard_mining`` does (it
calls the box head's loss with ``bbox_pred=None``); ``rank_by="cls+box"`` ranks by
classification + box regression loss, as the OHEM paper does. Like MMDetection's, this sampler
skips the OHEM paper's NMS over the candidates.

**Softmax RetinaNet** (Table III's BA²M row and its control): :class:`SoftmaxRetinaNet` replaces
the sigmoid focal classification head by :class:`SoftmaxClassificationHead`, a cross-entropy
over ``num_classes`` outputs where **class 0 is the background** (torchvision's label
convention: objects are labelled 1..K, so ``num_classes`` = K + 1 as for the R-CNNs; VOC 21).
Anchors matched to an object take its label, anchors below the background threshold take 0,
anchors in the ignore band (``Matcher.BETWEEN_THRESHOLDS``, IoU in [0.4, 0.5)) are left out.
Each image's summed loss is divided by its number of foreground anchors (at least 1) and the
images are averaged: torchvision's focal loss normalisation, so the loss is the only
difference from the focal baseline (MMDetection v1 divides the batch's sum by the batch's
foreground count instead). The background output's bias starts at
``log((1 - prior) * K / prior)`` and the objects' at 0, so a network whose last layer outputs
little else starts at background probability ``1 - prior`` = 0.99 and ``prior / K`` per object
class. At evaluation a detection's score is the softmax probability of its object class
(columns 1..K; the background column is never a detection), then torchvision's per-level
threshold and top-k, box decoding and class-wise NMS as for the focal RetinaNet.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.retinanet import RetinaNetClassificationHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import boxes as box_ops

RankBy = Literal["cls+box", "cls"]


class OHEMRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` whose training sampler keeps each image's highest-loss
    candidates (see the module's docstring); evaluation is unchanged."""

    def __init__(self, *args: Any, rank_by: RankBy = "cls", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if rank_by not in ("cls+box", "cls"):
            raise ValueError(f"rank_by {rank_by!r}: choose 'cls+box' or 'cls'")
        self.rank_by = rank_by
        self._inputs: tuple[dict[str, Tensor], list[tuple[int, int]]] | None = None

    @classmethod
    def from_heads(cls, heads: RoIHeads, rank_by: RankBy = "cls") -> OHEMRoIHeads:
        """The same modules and numbers as ``heads`` (a detector's plain ``RoIHeads``)."""
        return cls(heads.box_roi_pool, heads.box_head, heads.box_predictor,
                   heads.proposal_matcher.high_threshold, heads.proposal_matcher.low_threshold,
                   heads.fg_bg_sampler.batch_size_per_image,
                   heads.fg_bg_sampler.positive_fraction, heads.box_coder.weights,
                   heads.score_thresh, heads.nms_thresh, heads.detections_per_img,
                   heads.mask_roi_pool, heads.mask_head, heads.mask_predictor,
                   heads.keypoint_roi_pool, heads.keypoint_head, heads.keypoint_predictor,
                   rank_by=rank_by)

    def forward(self, features, proposals, image_shapes, targets=None):  # type: ignore[override]
        self._inputs = (features, image_shapes)  # the sampler needs them to run the box head
        try:
            return super().forward(features, proposals, image_shapes, targets)
        finally:
            self._inputs = None

    def roi_losses(self, features: dict[str, Tensor], proposals: list[Tensor],
                   image_shapes: list[tuple[int, int]], labels: list[Tensor],
                   regression_targets: list[Tensor]) -> list[Tensor]:
        """Each RoI's loss under the current box head, without gradient: cross-entropy, plus
        (``rank_by="cls+box"``) the smooth-L1 (beta 1/9) of its class's box for a positive.
        ``fastrcnn_loss`` divides both terms by the same RoI count, so this sum ranks RoIs as
        their share of the training loss does."""
        with torch.no_grad():
            x = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
            class_logits, box_regression = self.box_predictor(x)
            label = torch.cat(labels)
            loss = F.cross_entropy(class_logits, label, reduction="none")
            if self.rank_by == "cls+box":
                pos = torch.where(label > 0)[0]
                boxes = box_regression.reshape(len(label), -1, 4)[pos, label[pos]]
                box = F.smooth_l1_loss(boxes, torch.cat(regression_targets)[pos],
                                       beta=1 / 9, reduction="none").sum(1)
                loss = loss.index_add(0, pos, box)
        return list(loss.split([len(p) for p in proposals]))

    def hard_subsample(self, labels: list[Tensor], losses: list[Tensor]) -> list[Tensor]:
        """Per image, the indices of the hardest positives (label > 0, at most
        ``batch_size_per_image * positive_fraction``) and then the hardest negatives (label 0)
        up to ``batch_size_per_image`` in all; ``losses[i][j]`` is candidate j's loss (only
        entries of label >= 0 are read)."""
        size = self.fg_bg_sampler.batch_size_per_image
        quota = int(size * self.fg_bg_sampler.positive_fraction)
        out = []
        for label, loss in zip(labels, losses):
            pos, neg = torch.where(label >= 1)[0], torch.where(label == 0)[0]
            num_pos = min(len(pos), quota)
            num_neg = min(len(neg), size - num_pos)
            out.append(torch.cat([pos[loss[pos].topk(num_pos).indices],
                                  neg[loss[neg].topk(num_neg).indices]]))
        return out

    def select_training_samples(self, proposals, targets):  # type: ignore[override]
        if self._inputs is None:
            raise RuntimeError("OHEMRoIHeads samples inside forward() only")
        features, image_shapes = self._inputs
        self.check_targets(targets)
        dtype, device = proposals[0].dtype, proposals[0].device
        gt_boxes = [t["boxes"].to(dtype) for t in targets]
        proposals = self.add_gt_proposals(proposals, gt_boxes)
        matched_idxs, labels = self.assign_targets_to_proposals(
            proposals, gt_boxes, [t["labels"] for t in targets])
        matched_gt = [g[m] if g.numel() else torch.zeros((len(m), 4), dtype=dtype,
                                                         device=device)
                      for g, m in zip(gt_boxes, matched_idxs)]
        candidates = [torch.where(label >= 0)[0] for label in labels]  # ignored: never RoIs
        proposals, matched_idxs, labels, matched_gt = (
            [x[c] for x, c in zip(xs, candidates)]
            for xs in (proposals, matched_idxs, labels, matched_gt))
        regression_targets = self.box_coder.encode(matched_gt, proposals)
        losses = self.roi_losses(features, proposals, image_shapes, labels, regression_targets)
        keep = self.hard_subsample(labels, losses)
        return ([x[k] for x, k in zip(xs, keep)]
                for xs in (proposals, matched_idxs, labels, regression_targets))


class SoftmaxClassificationHead(RetinaNetClassificationHead):
    """RetinaNet's classification tower with a softmax output over ``num_classes`` (class 0 =
    background) and a cross-entropy loss; see the module's docstring."""

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int,
                 prior_probability: float = 0.01, norm_layer: Any = None) -> None:
        if num_classes < 2:
            raise ValueError("num_classes counts the background: at least 2")
        super().__init__(in_channels, num_anchors, num_classes, prior_probability, norm_layer)
        bias = torch.zeros(num_anchors, num_classes)
        bias[:, 0] = math.log((1 - prior_probability) * (num_classes - 1) / prior_probability)
        with torch.no_grad():
            self.cls_logits.bias.copy_(bias.flatten())  # channel a * num_classes + c

    def compute_loss(self, targets, head_outputs, matched_idxs):  # type: ignore[override]
        losses = []
        for target, logits, matched in zip(targets, head_outputs["cls_logits"], matched_idxs):
            foreground = matched >= 0
            classes = torch.zeros_like(matched)
            classes[foreground] = target["labels"][matched[foreground]]
            valid = matched != self.BETWEEN_THRESHOLDS
            loss = F.cross_entropy(logits[valid], classes[valid], reduction="sum")
            losses.append(loss / max(1, int(foreground.sum())))
        return sum(losses) / len(targets)


class SoftmaxRetinaNet(RetinaNet):
    """torchvision's ``RetinaNet`` with :class:`SoftmaxClassificationHead` and softmax scores
    (see the module's docstring); ``num_classes`` counts the background."""

    def __init__(self, backbone: Any, num_classes: int, prior_probability: float = 0.01,
                 **kwargs: Any) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        self.head.classification_head = SoftmaxClassificationHead(
            backbone.out_channels, self.anchor_generator.num_anchors_per_location()[0],
            num_classes, prior_probability)

    def postprocess_detections(self, head_outputs, anchors, image_shapes):  # type: ignore[override]
        detections = []
        for i, (anchors_i, shape) in enumerate(zip(anchors, image_shapes)):
            boxes, scores, labels = [], [], []
            for logits, regression, level_anchors in zip(head_outputs["cls_logits"],
                                                          head_outputs["bbox_regression"],
                                                          anchors_i):
                probs = logits[i].softmax(-1)[:, 1:]  # (anchors, K): object classes only
                flat = probs.flatten()
                idx = torch.where(flat > self.score_thresh)[0]
                top = flat[idx].topk(min(len(idx), self.topk_candidates))
                idx = idx[top.indices]
                anchor, cls = idx // probs.shape[1], idx % probs.shape[1]
                decoded = self.box_coder.decode_single(regression[i][anchor],
                                                       level_anchors[anchor])
                boxes.append(box_ops.clip_boxes_to_image(decoded, shape))
                scores.append(top.values)
                labels.append(cls + 1)
            boxes_t, scores_t, labels_t = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
            keep = box_ops.batched_nms(boxes_t, scores_t, labels_t, self.nms_thresh)
            keep = keep[: self.detections_per_img]
            detections.append({"boxes": boxes_t[keep], "scores": scores_t[keep],
                               "labels": labels_t[keep]})
        return detections
