"""Detection metrics of issue #15: VOC07 11-point mAP@0.5 and recall on hand-built cases, the
same numbers as pycocotools' COCOeval run at IoU 0.5 with 11 recall points on a random case,
and the COCO AP numbers of a perfect and a shifted detector."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from harness.training.detmetrics import ap11, box_iou, coco_metrics, coco_results, voc07


def _t(boxes, labels, difficult=None):
    t = {"boxes": np.array(boxes, float).reshape(-1, 4), "labels": np.array(labels, int)}
    if difficult is not None:
        t["difficult"] = np.array(difficult, bool)
    return t


def _d(boxes, scores, labels):
    return {"boxes": np.array(boxes, float).reshape(-1, 4), "scores": np.array(scores, float),
            "labels": np.array(labels, int)}


A, B, C = [0, 0, 10, 10], [20, 20, 40, 40], [50, 0, 60, 30]


def test_iou_and_ap11() -> None:
    assert box_iou(np.array([A]), np.array([A, [5, 0, 15, 10], B])).tolist() == [
        [1.0, pytest.approx(1 / 3), 0.0]]
    assert ap11(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx((6 + 5 * 0.5) / 11)


def test_perfect_detection() -> None:
    targets = [_t([A, B], [1, 2]), _t([C], [1])]
    dets = [_d([A, B], [0.9, 0.8], [1, 2]), _d([C], [0.7], [1])]
    out = voc07(dets, targets, num_classes=2)
    assert out["map"] == pytest.approx(100) and out["recall"] == pytest.approx(100)


def test_false_positive_ranked_first() -> None:
    """Class 1: FP (0.9) then TP (0.8): precision 1/2 at recall 1 -> AP 50; recall stays 100."""
    out = voc07([_d([B, A], [0.9, 0.8], [1, 1])], [_t([A], [1])], num_classes=1)
    assert out["ap"][1] == pytest.approx(50) and out["recall"] == pytest.approx(100)
    # ranked last instead, the false positive costs nothing at 11 points
    out = voc07([_d([B, A], [0.1, 0.8], [1, 1])], [_t([A], [1])], num_classes=1)
    assert out["map"] == pytest.approx(100)


def test_difficult_objects_are_ignored() -> None:
    """A difficult box is neither a miss nor, when detected, a hit or a false positive."""
    targets = [_t([A, B], [1, 1], difficult=[False, True])]
    assert voc07([_d([A], [0.9], [1])], targets, 1)["map"] == pytest.approx(100)
    both = voc07([_d([B, A], [0.95, 0.9], [1, 1])], targets, 1)
    assert both["map"] == pytest.approx(100) and both["recall"] == pytest.approx(100)
    only_hard = [_t([B], [1], difficult=[True])]
    assert voc07([_d([B], [0.9], [1])], only_hard, 1)["ap"] == {}  # no class to average


def test_duplicates_are_false_positives() -> None:
    """Second detection of the same object: a false positive (precision 1/2 at recall 1)."""
    out = voc07([_d([A, [0, 0, 10, 9]], [0.9, 0.8], [1, 1])], [_t([A], [1])], 1)
    assert out["ap"][1] == pytest.approx(100)  # the duplicate ranks after full recall
    out = voc07([_d([A, [0, 0, 10, 9], B], [0.9, 0.8, 0.7], [1, 1, 1])],
                [_t([A, B], [1, 1])], 1)
    # TP, FP (duplicate), TP: recall 0.5 at precision 1, recall 1 at precision 2/3
    assert out["ap"][1] == pytest.approx(100 * (6 * 1 + 5 * 2 / 3) / 11)


def test_missed_objects_and_wrong_class() -> None:
    out = voc07([_d([A], [0.9], [2])], [_t([A, B], [1, 1])], num_classes=2)
    assert out["ap"] == {1: 0.0} and out["recall"] == 0.0


def _random_case(seed: int):
    """Disjoint ground-truth boxes (so VOC's and COCO's matching rules agree), detections
    jittered from them plus random boxes, random scores, 3 classes, 12 images."""
    rng = np.random.default_rng(seed)
    targets, dets = [], []
    for _ in range(12):
        cells = rng.choice(16, size=rng.integers(1, 6), replace=False)
        boxes = np.array([[c % 4 * 50 + 5, c // 4 * 50 + 5, c % 4 * 50 + 45, c // 4 * 50 + 45]
                          for c in cells], float)
        boxes += rng.uniform(-4, 4, boxes.shape)
        labels = rng.integers(1, 4, len(boxes))
        targets.append(_t(boxes, labels))
        keep = rng.random(len(boxes)) < 0.8
        jit = boxes[keep] + rng.normal(0, 6, (int(keep.sum()), 4))
        noise = rng.uniform(0, 160, (int(rng.integers(0, 4)), 2))
        noise = np.hstack([noise, noise + rng.uniform(10, 40, noise.shape)])
        db = np.vstack([jit, noise])
        dl = np.concatenate([np.where(rng.random(int(keep.sum())) < 0.9, labels[keep],
                                      rng.integers(1, 4, int(keep.sum()))),
                             rng.integers(1, 4, len(noise))])
        dets.append(_d(db, rng.random(len(db)), dl))
    return dets, targets


def _coco_gt(targets) -> COCO:
    anns = [{"id": n, "image_id": i, "category_id": int(lab), "iscrowd": 0,
             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
             "area": float((b[2] - b[0]) * (b[3] - b[1]))}
            for i, t in enumerate(targets) for n, (b, lab) in
            enumerate(zip(t["boxes"].tolist(), t["labels"]), 1000 * i + 1)]
    coco = COCO()
    coco.dataset = {"images": [{"id": i, "height": 220, "width": 220}
                               for i in range(len(targets))],
                    "annotations": anns,
                    "categories": [{"id": k, "name": str(k)} for k in (1, 2, 3)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


@pytest.mark.parametrize("seed", [0, 1])
def test_voc07_equals_cocoeval_at_iou_half_and_11_points(seed: int) -> None:
    dets, targets = _random_case(seed)
    ours = voc07(dets, targets, num_classes=3)
    coco = _coco_gt(targets)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(coco_results(enumerate(dets))), "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.recThrs = np.linspace(0, 1, 11)
        ev.params.maxDets = [1000]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, -1]  # recall points x classes, area "all"
    recall = ev.eval["recall"][0, :, 0, -1]
    for k in (1, 2, 3):
        assert ours["ap"][k] == pytest.approx(100 * precision[:, k - 1].mean(), abs=1e-9)
    assert ours["recall"] == pytest.approx(100 * recall.mean(), abs=1e-9)
    assert 20 < ours["map"] < 95  # a case with both hits and misses


def test_coco_metrics_box_and_mask() -> None:
    from pycocotools import mask as mask_utils

    masks = np.zeros((2, 200, 200), np.uint8)
    masks[0, 10:50, 10:50] = 1  # a medium object (1600 px)
    masks[1, 100:199, 5:195] = 1  # a large one (18810 px)
    boxes = np.array([[10, 10, 50, 50], [5, 100, 195, 199]], float)
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "height": 200, "width": 200}],
                    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
                    "annotations": []}
    for n, (m, b) in enumerate(zip(masks, boxes), 1):
        rle = mask_utils.encode(np.asfortranarray(m))
        rle["counts"] = rle["counts"].decode("ascii")
        coco.dataset["annotations"].append({
            "id": n, "image_id": 1, "category_id": n, "iscrowd": 0, "segmentation": rle,
            "area": float(m.sum()), "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    perfect = {"boxes": boxes, "scores": np.array([0.9, 0.8]), "labels": np.array([1, 2]),
               "masks": masks[:, None].astype(np.float32)}
    box = coco_metrics(coco, coco_results([(1, perfect)]), "bbox")
    mask = coco_metrics(coco, coco_results([(1, perfect)], masks=True), "segm")
    for out, sfx in ((box, "bb"), (mask, "mask")):
        for key in ("ap", "ap50", "ap75", "apm", "apl"):
            assert out[f"{key}_{sfx}"] == pytest.approx(100)
        assert out[f"aps_{sfx}"] == -1  # no small object: COCOeval's -1, kept
    shifted = dict(perfect, boxes=boxes + [8, 0, 8, 0])  # IoU 0.67 / 0.92: AP50 yes, AP75 half
    out = coco_metrics(coco, coco_results([(1, shifted)]), "bbox")
    assert out["ap50_bb"] == pytest.approx(100) and 0 < out["ap_bb"] < 100
    assert out["ap75_bb"] == pytest.approx(50)
    assert coco_metrics(coco, [], "segm")["ap_mask"] == 0.0
