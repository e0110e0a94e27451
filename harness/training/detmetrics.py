"""Detection metrics, in percent as the paper prints them.

- :func:`voc07` (Tables III, IV): PASCAL VOC 2007's 11-point interpolated AP at IoU 0.5 per
  class, its mean over the classes with ground truth (``map``), and ``recall``: the mean over
  those classes of the share of non-difficult objects found by some detection (the last point
  of each class's recall curve, MMDetection's ``eval_map`` summary). As VOC's ``voc_eval.py``:
  detections of a class are ranked by score over all images; each takes the ground-truth box
  of its image and class it overlaps most; above IoU 0.5 it is a true positive the first time
  that box is taken, a false positive (a duplicate) after; a "difficult" box neither counts
  nor penalises. Boxes are (x0, y0, x1, y1) in continuous pixels
  (:mod:`harness.training.detdata` turns VOC's 1-based inclusive boxes into these, so widths
  equal VOC's ``xmax - xmin + 1``).
- :func:`coco_metrics` (Tables XIV-XVI): pycocotools' ``COCOeval``, box or mask AP, AP50, AP75,
  APS, APM, APL, named as the suites name them (``ap_bb`` ... ``apl_mask``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from suites.base import METRICS

Target = Mapping[str, Any]  # boxes (K, 4), labels (K,), optional difficult (K,)
Detections = Mapping[str, Any]  # boxes (N, 4), scores (N,), labels (N,)


def _np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4): (N, M)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def ap11(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2007's 11-point AP: the mean over t = 0, 0.1, ..., 1 of the best precision at
    recall >= t (0 where recall never reaches t)."""
    return float(np.mean([precision[recall >= t].max(initial=0.0)
                          for t in np.linspace(0, 1, 11)]))


def voc07(detections: Sequence[Detections], targets: Sequence[Target], num_classes: int,
          iou: float = 0.5) -> dict[str, Any]:
    """``map`` and ``recall`` (percent) and per-class ``ap`` (label -> percent) of one
    detection dict per image against its target; labels are 1..``num_classes``."""
    aps, recalls = {}, []
    for k in range(1, num_classes + 1):
        gts, npos, ranked = [], 0, []
        for i, (det, tgt) in enumerate(zip(detections, targets, strict=True)):
            labels = _np(tgt["labels"], np.int64)
            keep = labels == k
            boxes = _np(tgt["boxes"]).reshape(-1, 4)[keep]
            hard = _np(tgt.get("difficult", np.zeros(len(labels))), bool)[keep]
            gts.append((boxes, hard, np.zeros(len(boxes), bool)))
            npos += int((~hard).sum())
            dl = _np(det["labels"], np.int64) == k
            for box, score in zip(_np(det["boxes"]).reshape(-1, 4)[dl], _np(det["scores"])[dl]):
                ranked.append((-score, i, box))
        if npos == 0:
            continue
        ranked.sort(key=lambda r: r[0])  # stable: equal scores keep image order
        tp, fp = np.zeros(len(ranked)), np.zeros(len(ranked))
        for j, (_, i, box) in enumerate(ranked):
            boxes, hard, taken = gts[i]
            overlaps = box_iou(box[None], boxes)[0] if len(boxes) else np.zeros(0)
            best = int(overlaps.argmax()) if len(boxes) else -1
            if best < 0 or overlaps[best] <= iou:
                fp[j] = 1
            elif hard[best]:
                continue
            elif taken[best]:
                fp[j] = 1
            else:
                tp[j], taken[best] = 1, True
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps[k] = 100 * ap11(rec, prec)
        recalls.append(100 * (rec[-1] if len(rec) else 0.0))
    if not aps:
        return {"map": float("nan"), "recall": float("nan"), "ap": {}}
    return {"map": float(np.mean(list(aps.values()))), "recall": float(np.mean(recalls)),
            "ap": aps}


def coco_results(outputs: Iterable[tuple[int, Detections]], masks: bool = False
                 ) -> list[dict[str, Any]]:
    """COCO result entries of (image_id, detector output) pairs: boxes as x, y, w, h; with
    ``masks``, the output's (N, 1, H, W) mask probabilities above 0.5 as compressed RLE."""
    from pycocotools import mask as mask_utils

    out = []
    for image_id, det in outputs:
        boxes = _np(det["boxes"]).reshape(-1, 4)
        rles = []
        if masks:
            binary = (_np(det["masks"], np.float32) > 0.5).astype(np.uint8)
            binary = binary.reshape(len(boxes), *binary.shape[-2:])
            rles = [mask_utils.encode(np.asfortranarray(m)) for m in binary]
            for rle in rles:
                rle["counts"] = rle["counts"].decode("ascii")
        for n, (box, score, label) in enumerate(zip(boxes, _np(det["scores"]),
                                                    _np(det["labels"], np.int64))):
            entry = {"image_id": int(image_id), "category_id": int(label),
                     "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]),
                              float(box[3] - box[1])], "score": float(score)}
            if masks:
                entry["segmentation"] = rles[n]
            out.append(entry)
    return out


def coco_metrics(coco_gt: Any, results: list[dict[str, Any]],
                 kind: Literal["bbox", "segm"] = "bbox") -> dict[str, float]:
    """COCOeval's six AP numbers (percent) of ``results`` against the ``pycocotools.coco.COCO``
    ground truth, keyed ``ap_bb`` ... (``_mask`` for segm). No result at all scores 0."""
    from pycocotools.cocoeval import COCOeval

    suffix = "_bb" if kind == "bbox" else "_mask"
    keys = [m for m in METRICS if m.endswith(suffix)]  # ap, ap50, ap75, aps, apm, apl
    if not results:
        return dict.fromkeys(keys, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), kind)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # stats: AP, AP50, AP75, APs, APm, APl (-1 where no ground truth of that size: kept -1)
    return {k: float(100 * v) if v >= 0 else float(v) for k, v in zip(keys, ev.stats[:6])}
