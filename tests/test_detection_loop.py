"""The detection job of issue #15 (harness/training/detjob.py, detloop.py): its data through
the real VOC and COCO loaders, its backbone weights (a torchvision file or a harness ImageNet
job), the warm-up/step schedule, micro-batches that add up to the step's gradient, resuming
to identical weights and the COCO evaluation (the learning bar: tests/test_detection_cli.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Subset
from torchvision.models import resnet18, resnet34

from harness.training import detloop
from harness.training.checkpoints import Checkpoint
from harness.training.data import MissingDatasetError
from harness.training.detjob import (
    BackboneWeightsError,
    MissingWeightsError,
    build_detection_model,
    coco_ground_truth,
    detector_body,
    open_detection_data,
)
from harness.training.detloop import (
    epoch_batches,
    epoch_flips,
    epoch_order,
    hflip,
    lr_at,
    train_detection,
    training_target,
)
from harness.training.loop import Hooks, Stopped, seed_everything
from harness.training.shapes import CLASSES, shapes_dataset, write_coco, write_voc
from models.registry import build_model
from suites.base import METRICS


def job(tmp_path: Path, *, model: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
        seed: int = 0) -> dict[str, Any]:
    """A detection job config as the planner writes it (plus the worker's runtime keys): a
    ResNet-18 FPN-16 Faster R-CNN on 64 px shapes unless told otherwise."""
    return {
        "task": "detection",
        "model": {"detector": "faster_rcnn", "arch": "resnet18", "num_classes": 4,
                  "attention": None, "options": {}, "norm": "train", "frozen_stages": 0,
                  "fpn_channels": 16, "sampler": "random", "ohem_rank_by": "cls",
                  "cls_loss": "focal", "min_size": 64, "max_size": 64, "pretrained": "none",
                  **(model or {})},
        "data": {"provider": "shapes", "format": "voc", "masks": False, "image_size": 64,
                 "train_size": 4, "val_size": 2, "data_root": str(tmp_path / "data"),
                 "download": False, **(data or {})},
        "train": {"recipe": "mmdet-voc0712", "epochs": 1, "batch_size": 4,
                  "images_per_gpu": 2, "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
                  "milestones": [], "gamma": 0.1, "warmup_iters": 500,
                  "warmup_ratio": 1 / 3, "grad_clip": 35.0, "flip": 0.5, **(train or {})},
        "evals": [], "profile": "smoke", "comparable": False, "seed": seed,
        "runtime": {"compile": False, "results_dir": str(tmp_path / "results")},
    }


CPU = torch.device("cpu")


# --- data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["voc", "coco"])
def test_shapes_data_through_the_real_loaders(tmp_path, fmt) -> None:
    config = job(tmp_path, data={"format": fmt, "masks": fmt == "coco", "train_size": 5,
                                 "val_size": 3})
    data = open_detection_data(config)
    assert (data.format, data.masks, data.classes) == (fmt, fmt == "coco", CLASSES)
    assert (len(data.train), len(data.val)) == (5, 3)
    expected = shapes_dataset(5, 64, seed=0)  # fixed data seeds: the job's seed plays no part
    for item, (image, target) in zip(expected, data.train):
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert torch.equal(torch.as_tensor(target["boxes"]).float(),
                           torch.from_numpy(item.boxes).float())
        assert torch.equal(torch.as_tensor(target["labels"]), torch.from_numpy(item.labels))
        assert ("difficult" in target) == (fmt == "voc") and ("masks" in target) == (fmt == "coco")
    val_boxes = torch.as_tensor(data.val[0][1]["boxes"]).float()
    assert torch.equal(val_boxes, torch.from_numpy(shapes_dataset(1, 64, seed=1)[0].boxes).float())
    cache = tmp_path / "data" / "ba2m-bench-shapes"
    assert [p.name for p in cache.iterdir()] == [f"v1-{fmt}-64px-train5-val3"]  # no temp left
    again = open_detection_data(job(tmp_path, data={"format": fmt, "train_size": 2,
                                                    "val_size": 3}, seed=7))
    assert len(again.train) == 2 and len(list(cache.iterdir())) == 2


def test_subsets_keep_the_first_images_and_coco_ground_truth_follows(tmp_path) -> None:
    data = open_detection_data(job(tmp_path, data={"format": "coco", "train_size": 6}))
    sub = Subset(data.train, range(2))
    gt = coco_ground_truth(sub)
    assert sorted(gt.getImgIds()) == [1, 2]
    assert {a["image_id"] for a in gt.dataset["annotations"]} == {1, 2}
    assert coco_ground_truth(data.train) is data.train.coco


def test_real_layouts_voc07_plus_12_and_coco_2017(tmp_path) -> None:
    images = shapes_dataset(6, 32, seed=5)
    write_voc(images[:2], tmp_path, "trainval", "2007")
    write_voc(images[2:5], tmp_path, "trainval", "2012")
    write_voc(images[5:], tmp_path, "test", "2007")
    voc = open_detection_data(job(tmp_path, data={"provider": "voc0712",
                                                  "data_root": str(tmp_path),
                                                  "train_size": None, "val_size": None}))
    assert (len(voc.train), len(voc.val), voc.format) == (5, 1, "voc")
    assert voc.classes[0] == "aeroplane" and len(voc.classes) == 20
    write_coco(images[:4], tmp_path, "train2017")
    write_coco(images[4:], tmp_path, "val2017")
    coco = open_detection_data(job(tmp_path, data={"provider": "coco", "masks": True,
                                                   "data_root": str(tmp_path),
                                                   "train_size": 3, "val_size": None}))
    assert (len(coco.train), len(coco.val), coco.format) == (3, 2, "coco")
    assert coco.classes == CLASSES and "masks" in coco.train[0][1]
    with pytest.raises(ValueError, match="masks need COCO"):
        open_detection_data(job(tmp_path, data={"masks": True}))


def test_coco_training_skips_crowd_boxes_and_images_without_objects(tmp_path) -> None:
    """As MMDetection v1: training images without annotations are left out (the test set
    keeps them) and crowd boxes are no training targets."""
    images = shapes_dataset(6, 32, seed=5)
    write_coco(images[4:], tmp_path, "val2017")
    ann = write_coco(images[:4], tmp_path, "train2017")
    coco = json.loads(ann.read_text())
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != 2]
    crowd = next(a for a in coco["annotations"] if a["image_id"] == 1)
    crowd["iscrowd"] = 1
    ann.write_text(json.dumps(coco))
    data = open_detection_data(job(tmp_path, data={"provider": "coco", "data_root":
                                                   str(tmp_path), "train_size": None,
                                                   "val_size": None}))
    assert len(data.train) == 3 and len(data.val) == 2
    image, target = data.train[0]
    assert int(target["image_id"]) == 1
    out = training_target(target, False, drop_difficult=False, image_size=(32, 32))
    objects = sum(a["image_id"] == 1 for a in coco["annotations"])
    assert len(target["boxes"]) == objects and len(out["boxes"]) == objects - 1
    assert int(data.train[1][1]["image_id"]) == 3  # image 2 has no object: skipped


@pytest.mark.parametrize("provider", ["voc0712", "coco"])
def test_missing_real_data_is_one_line(tmp_path, provider) -> None:
    with pytest.raises(MissingDatasetError, match="--data-root") as info:
        open_detection_data(job(tmp_path, data={"provider": provider, "data_root": None}))
    assert "\n" not in str(info.value)
    with pytest.raises(MissingDatasetError) as info:
        open_detection_data(job(tmp_path, data={"provider": provider,
                                                "data_root": str(tmp_path)}))
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


# --- schedule, order, flips ----------------------------------------------------------------


def test_lr_warm_up_and_milestones() -> None:
    t = {"lr": 0.02, "gamma": 0.1, "milestones": [2, 3], "warmup_iters": 100,
         "warmup_ratio": 0.25}
    assert lr_at(t, 0, 0) == pytest.approx(0.005)
    assert lr_at(t, 50, 0) == pytest.approx(0.02 * (0.25 + 0.75 * 0.5))
    assert lr_at(t, 100, 0) == pytest.approx(0.02)
    assert lr_at(t, 500, 1) == pytest.approx(0.02)
    assert lr_at(t, 500, 2) == pytest.approx(0.002)
    assert lr_at(t, 500, 3) == pytest.approx(0.0002)
    assert lr_at(t, 10, 2) == pytest.approx(0.002 * (0.25 + 0.75 * 0.1))  # both at once


def test_order_and_flips_depend_on_seed_and_epoch_only() -> None:
    assert sorted(epoch_order(10, 0, 0)) == list(range(10))
    assert epoch_order(10, 0, 0) == epoch_order(10, 0, 0) != epoch_order(10, 0, 1)
    assert epoch_order(10, 0, 0) != epoch_order(10, 1, 0)
    torch.manual_seed(0)
    flips = epoch_flips(1000, 0.5, 0, 0)
    torch.manual_seed(1)
    assert flips == epoch_flips(1000, 0.5, 0, 0) and 400 < sum(flips) < 600
    assert not any(epoch_flips(50, 0.0, 0, 0)) and all(epoch_flips(50, 1.0, 0, 0))


def test_hflip_mirrors_image_boxes_and_masks(tmp_path) -> None:
    image = torch.zeros(3, 4, 10)
    image[:, 1:3, 1:4] = 1
    masks = (image[:1] > 0).to(torch.uint8)
    target = {"boxes": torch.tensor([[1.0, 1.0, 4.0, 3.0]]), "labels": torch.tensor([1]),
              "masks": masks}
    flipped, out = hflip(image, target)
    assert torch.equal(out["boxes"], torch.tensor([[6.0, 1.0, 9.0, 3.0]]))
    ys, xs = torch.nonzero(flipped[0], as_tuple=True)
    assert (xs.min(), xs.max() + 1) == (6, 9)
    assert torch.equal(out["masks"][0], flipped[0].to(torch.uint8))
    config = job(tmp_path, train={"flip": 1.0})  # the loop's batches: every image mirrored
    data = open_detection_data(config)
    batch = next(epoch_batches(data, config, 0))
    order = epoch_order(len(data.train), 0, 0)
    for (image, _), i in zip(batch, order):
        assert torch.equal(image, data.train[i][0].flip(-1))


def test_training_targets_drop_difficult_and_empty_boxes() -> None:
    target = {"boxes": torch.tensor([[0.0, 0, 5, 5], [2, 2, 2, 8], [1, 1, 4, 4]]),
              "labels": torch.tensor([1, 2, 3]), "difficult": torch.tensor([False, False, True])}
    out = training_target(target, False, drop_difficult=True, image_size=(8, 8))
    assert out["boxes"].tolist() == [[0, 0, 5, 5]] and out["labels"].tolist() == [1]
    kept = training_target(target, False, drop_difficult=False, image_size=(8, 8))
    assert kept["labels"].tolist() == [1, 3]  # only the box without width is gone
    empty = training_target({"image_id": 7}, True, drop_difficult=False, image_size=(6, 9))
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    assert empty["masks"].shape == (0, 6, 9)


# --- micro-batches -------------------------------------------------------------------------


def forward_counter(monkeypatch) -> list[int]:
    """Patch the loop's network builder to record how many images each training forward
    takes; returns the record."""
    sizes: list[int] = []
    build = detloop.build_detection_model

    def counting(config):
        model = build(config)
        model.register_forward_pre_hook(
            lambda m, args: sizes.append(len(args[0])) if m.training else None)
        return model

    monkeypatch.setattr(detloop, "build_detection_model", counting)
    return sizes


@pytest.mark.parametrize("scope, forwards", [("local", [2, 2]), ("global", [4])])
def test_one_step_is_its_micro_batches_averaged(tmp_path, monkeypatch, scope, forwards) -> None:
    """A step of 4 images at 2 per GPU (BA²M local: what 2 processes compute) has the
    gradient of two 2-image forwards, each loss halved; with batch_scope global, of one
    forward over all 4."""
    config = job(tmp_path, model={"attention": "ba2m", "options": {"batch_scope": scope}},
                 train={"flip": 0.0, "momentum": 0.0, "weight_decay": 0.0, "grad_clip": None,
                        "warmup_iters": 0, "lr": 0.05}, data={"val_size": 1})
    sizes = forward_counter(monkeypatch)
    ck = Checkpoint(tmp_path / "ck.pt")
    train_detection(config, ck, device=CPU)
    assert sizes == forwards
    trained = ck.load()[0]["model"]

    seed_everything(config["seed"])  # the loop's own start: same weights, same sampler draws
    model = build_detection_model(config)
    before = copy.deepcopy(model.state_dict())
    batch = next(epoch_batches(open_detection_data(config), config, 0))
    model.train()
    for part in np.array_split(np.arange(4), len(forwards)):
        images = [batch[i][0] for i in part]
        targets = [batch[i][1] for i in part]
        (sum(model(images, targets).values()) / len(forwards)).backward()
    moved = 0.0
    for name, p in model.named_parameters():
        expected = before[name] - 0.05 * p.grad
        torch.testing.assert_close(trained[name], expected, rtol=1e-4, atol=1e-6)
        moved = max(moved, float((trained[name] - before[name]).abs().max()))
    assert moved > 1e-3
    for name, buf in model.named_buffers():  # BatchNorm statistics of the same micro-batches
        torch.testing.assert_close(trained[name], buf)


# --- resuming ------------------------------------------------------------------------------


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path) -> None:
    config = job(tmp_path, train={"epochs": 2, "batch_size": 2, "lr": 0.02,
                                  "warmup_iters": 2}, data={"val_size": 1})
    full = Checkpoint(tmp_path / "full.pt")
    seen: list[tuple[int, dict[str, float]]] = []
    result = train_detection(config, full, Hooks(on_epoch=lambda e, m: seen.append((e, m))),
                             device=CPU)
    assert [e for e, _ in seen] == [1, 2]
    assert all(set(m) == {"train_loss", "lr", "images_per_s", "seconds"} for _, m in seen)
    assert seen[1][1]["lr"] == pytest.approx(0.02)  # the warm-up is over
    assert result["epochs"] == 2 and result["eval_batch_size"] == 1
    assert result["eval_mode"] == "n/a" and set(result["metrics"]) == {"recall", "map"}
    assert set(result["ap_per_class"]) <= set(CLASSES)

    part = Checkpoint(tmp_path / "part.pt")
    stop = {"now": False}

    def record(epoch: int, metrics: dict[str, float]) -> None:
        stop["now"] = True

    with pytest.raises(Stopped, match="after epoch 1"):
        train_detection(config, part, Hooks(on_epoch=record, should_stop=lambda: stop["now"]),
                        device=CPU)
    assert part.load()[0]["epoch"] == 1
    events: list[tuple[str, int]] = []
    resumed = train_detection(config, part, Hooks(
        on_epoch=lambda e, m: events.append(("epoch", e)),
        on_resume=lambda e, note: events.append(("resume", e))), device=CPU)
    assert events == [("resume", 1), ("epoch", 1), ("epoch", 2)]
    a, b = full.load()[0], part.load()[0]
    assert a["step"] == b["step"] == 4
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert resumed["metrics"] == result["metrics"]


# --- COCO evaluation -----------------------------------------------------------------------


def test_mask_rcnn_on_coco_format_reports_every_coco_key(tmp_path) -> None:
    config = job(tmp_path, model={"detector": "mask_rcnn"},
                 data={"format": "coco", "masks": True, "val_size": 2},
                 train={"batch_size": 2})
    result = train_detection(config, Checkpoint(tmp_path / "ck.pt"), device=CPU)
    keys = [m for m in METRICS if m.endswith(("_bb", "_mask"))]
    assert list(result["metrics"]) == keys and "ap_per_class" not in result
    assert all(-1 <= v <= 100 for v in result["metrics"].values())


# --- backbone weights ----------------------------------------------------------------------


def test_torchvision_weights_load_into_the_body(tmp_path) -> None:
    weights = resnet18().state_dict()
    path = tmp_path / "r18.pth"
    torch.save(weights, path)
    model = build_detection_model(job(tmp_path, model={"attention": "ba2m",
                                                       "pretrained": str(path)}))
    body = detector_body(model).state_dict()
    loaded = [k for k in weights if not k.startswith("fc.")]
    assert all(torch.equal(body[k], weights[k]) for k in loaded)
    assert len(loaded) == len([k for k in body if ".ca." not in k and ".lsa." not in k
                               and ".gsa" not in k])  # everything but BA²M's own


@pytest.mark.parametrize("content, message", [
    ("r34", "does not have"), ("other", "missing"), ("absent", "not found"),
])
def test_wrong_weights_file_is_one_line(tmp_path, content, message) -> None:
    path = tmp_path / "w.pth"
    if content == "r34":
        torch.save(resnet34().state_dict(), path)
    elif content == "other":
        torch.save({"conv.weight": torch.zeros(1)}, path)
    error = MissingWeightsError if content == "absent" else BackboneWeightsError
    with pytest.raises(error, match=message) as info:
        build_detection_model(job(tmp_path, model={"pretrained": str(path)}))
    assert "\n" not in str(info.value)


def body_name(key: str, stage_blocks: list[int]) -> str:
    """The detection body's name of a zoo network's weight: stem.0/1 -> conv1/bn1,
    stages.i.j -> layer{i+1}.j, after.i (BA²M) -> layer{i+1}.<blocks of stage i>."""
    head, index, leaf = key.split(".", 2)
    if head == "stem":
        return f"{('conv1', 'bn1')[int(index)]}.{leaf}"
    block = leaf if head == "stages" else f"{stage_blocks[int(index)]}.{leaf}"
    return f"layer{int(index) + 1}.{block}"


@pytest.mark.parametrize("norm", ["train", "frozen"])
def test_harness_imagenet_job_loads_into_the_body(tmp_path, norm) -> None:
    net = build_model("resnet18", form="imagenet", attention="ba2m")
    for m in net.modules():  # statistics a trained network would have
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    saved = net.state_dict()
    Checkpoint(tmp_path / "results" / "checkpoints" / "abc123.pt").save(
        {"model": saved, "epoch": 1, "history": [], "config_hash": "abc123"})
    model = build_detection_model(job(tmp_path, model={
        "attention": "ba2m", "pretrained": "job:abc123", "norm": norm}))
    body = detector_body(model).state_dict()
    blocks = [len(s) for s in net.stages]
    compared = 0
    for key, value in saved.items():
        name = body_name(key, blocks) if not key.startswith("fc.") else None
        if name is None or (name not in body and key.endswith("num_batches_tracked")):
            continue  # a frozen BatchNorm keeps no counter
        assert torch.equal(body[name], value), key
        compared += 1
    assert compared == len(body)


def test_missing_or_mismatched_job_checkpoint_is_one_line(tmp_path) -> None:
    with pytest.raises(MissingWeightsError, match="job:feed42") as info:
        build_detection_model(job(tmp_path, model={"pretrained": "job:feed42"}))
    assert "\n" not in str(info.value)
    net = build_model("resnet34", form="imagenet")
    Checkpoint(tmp_path / "results" / "checkpoints" / "r34.pt").save({"model": net.state_dict()})
    with pytest.raises(BackboneWeightsError, match="job:r34") as info:
        build_detection_model(job(tmp_path, model={"pretrained": "job:r34"}))
    assert "\n" not in str(info.value)
