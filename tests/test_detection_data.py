"""The offline shapes set of issue #15, and torchvision's real COCO and VOC loaders reading it
back: what was written is what the loaders return (boxes exactly, masks exactly for COCO)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.training.data import MissingDatasetError
from harness.training.detdata import coco_detection, voc_detection
from harness.training.shapes import CLASSES, as_tensors, shapes_dataset, write_coco, write_voc


@pytest.fixture(scope="module")
def shapes():
    return shapes_dataset(6, size=64, seed=3)


def test_seeded_and_well_formed(shapes) -> None:
    again = shapes_dataset(6, size=64, seed=3)
    assert all(np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
               for a, b in zip(shapes, again))
    assert not np.array_equal(shapes_dataset(1, 64, seed=4)[0].image, shapes[0].image)
    for item in shapes_dataset(40, size=64, seed=0):
        k = len(item.labels)
        assert 1 <= k <= 3 and item.boxes.shape == (k, 4) and item.masks.shape == (k, 64, 64)
        assert set(item.labels.tolist()) <= {1, 2, 3}
        for box, mask in zip(item.boxes, item.masks):  # each box is its mask's tight box
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert item.masks.sum(0).max() == 1  # shapes do not overlap
    kinds = {int(k) for item in shapes_dataset(40, 64, 0) for k in item.labels}
    assert kinds == {1, 2, 3}


def test_coco_loader_reads_what_was_written(shapes, tmp_path) -> None:
    write_coco(shapes, tmp_path, "val")
    data = coco_detection(tmp_path, "val", masks=True)
    assert len(data) == len(shapes)
    for item, (image, target) in zip(shapes, data):
        _, ref = as_tensors(item)
        pixels = image.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(pixels, item.image)  # PNG: lossless
        assert torch.equal(target["boxes"], ref["boxes"])
        assert torch.equal(target["labels"], ref["labels"])
        assert torch.equal(target["masks"].to(torch.uint8), ref["masks"])


def test_voc_loader_reads_what_was_written(shapes, tmp_path) -> None:
    write_voc(shapes, tmp_path, "test")
    data = voc_detection(tmp_path, "test", classes=CLASSES)
    assert len(data) == len(shapes)
    for item, (image, target) in zip(shapes, data):
        _, ref = as_tensors(item)
        assert image.shape == (3, 64, 64)
        assert torch.equal(target["boxes"], ref["boxes"])
        assert torch.equal(target["labels"], ref["labels"])
        assert not target["difficult"].any()


def test_missing_roots_are_one_line(tmp_path) -> None:
    for open_it in (lambda: coco_detection(tmp_path, "val2017"),
                    lambda: voc_detection(tmp_path, "test")):
        with pytest.raises(MissingDatasetError) as err:
            open_it()
        assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)
