"""Detection suites -> jobs (harness/plan/detection.py): the paper's and the smoke profile's
configs, the rows' detector options, the ImageNet backbone each starts from, and --set."""

from __future__ import annotations

import pytest

import suites
from harness.errors import UserError
from harness.plan.detector import DetectorSpec
from harness.plan.jobs import PROFILES, expand, profile
from harness.plan.overrides import Overrides

DETECTION = ("table3", "table4", "table14", "table15", "table16")


def _jobs(name: str, prof: str = "paper", **over: object) -> dict[str, dict]:
    jobs = expand(suites.get(name), profile(prof), Overrides(**over))  # type: ignore[arg-type]
    return {j.label: j.config for j in jobs}


def _table5(arch: str, method: str, prof: str = "paper") -> str:
    (job,) = expand(suites.get("table5"), profile(prof),
                    Overrides(seeds=1, only=f"arch={arch},method={method}"))
    return job.config_hash


def test_every_detection_job_builds() -> None:
    """Each distinct detector of every detection job of every profile builds (meta device)."""
    models = {}
    for name in DETECTION:
        for prof in PROFILES.values():
            for job in expand(suites.get(name), prof):
                assert job.unavailable is None and job.config["task"] == "detection"
                models[repr(sorted(job.config["model"].items()))] = job.config["model"]
    for model in models.values():
        DetectorSpec(**model).check()
    assert len(models) > 20


def test_paper_configs_follow_mmdetection() -> None:
    voc, coco = _jobs("table4"), _jobs("table16")
    base = voc["ResNet-50 / baseline / Faster R-CNN"]
    assert base["model"] | {"options": {}} == {
        "detector": "faster_rcnn", "arch": "resnet50", "num_classes": 21, "attention": None,
        "options": {}, "norm": "eval", "frozen_stages": 1, "fpn_channels": 256,
        "sampler": "random", "ohem_rank_by": "cls", "cls_loss": "focal", "min_size": 600,
        "max_size": 1000, "pretrained": "job:" + _table5("resnet50", "baseline")}
    assert base["data"] == {"provider": "voc0712", "masks": False}
    assert base["train"] == {
        "recipe": "mmdet-voc0712", "epochs": 12, "batch_size": 16, "images_per_gpu": 2,
        "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4, "milestones": [9], "gamma": 0.1,
        "warmup_iters": 500, "warmup_ratio": 1 / 3, "grad_clip": 35.0, "flip": 0.5}
    assert base["comparable"] and base["profile"] == "paper"
    mask = coco["ResNet-101 / ba2m / Mask R-CNN"]
    assert (mask["model"]["detector"], mask["model"]["num_classes"]) == ("mask_rcnn", 91)
    assert (mask["model"]["min_size"], mask["model"]["max_size"]) == (800, 1333)
    assert mask["model"]["attention"] == "ba2m" and mask["model"]["options"]["gsa_impl"] == "pooled"
    assert mask["model"]["pretrained"] == "job:" + _table5("resnet101", "ba2m")
    assert mask["data"] == {"provider": "coco", "masks": True}
    assert (mask["train"]["lr"], mask["train"]["milestones"]) == (0.02, [16, 22])


def test_rows_choose_loss_sampler_and_attention() -> None:
    iii, iv = _jobs("table3"), _jobs("table4")
    focal = iii["ResNet-50 / focal-loss / RetinaNet"]["model"]
    ours = iii["ResNet-50 / ba2m / RetinaNet"]["model"]
    control = iii["ResNet-50 / softmax-loss / RetinaNet"]["model"]
    assert (focal["cls_loss"], focal["attention"]) == ("focal", None)
    assert (ours["cls_loss"], ours["attention"]) == ("softmax", "ba2m")
    assert (control["cls_loss"], control["attention"]) == ("softmax", None)
    assert suites.get("table3").rows[2].paper == {}  # the control is not the paper's
    ohem = iv["ResNet-50 / ohem / Faster R-CNN"]["model"]
    assert (ohem["sampler"], ohem["ohem_rank_by"], ohem["attention"]) == ("ohem", "cls", None)
    assert {m["model"]["sampler"] for k, m in iv.items() if "ohem" not in k} == {"random"}


def test_smoke_trains_from_scratch_on_the_shapes_set() -> None:
    voc, coco = _jobs("table3", "smoke"), _jobs("table16", "smoke")
    for config in voc.values():
        assert config["data"] == {"provider": "shapes", "masks": False, "format": "voc",
                                  "image_size": 96, "train_size": 64, "val_size": 32}
        m = config["model"]
        assert (m["pretrained"], m["norm"], m["frozen_stages"], m["num_classes"]) == (
            "none", "train", 0, 4)
        assert (m["min_size"], m["max_size"]) == (96, 96)
        assert (config["train"]["epochs"], config["train"]["batch_size"]) == (1, 16)
        assert not config["comparable"]
    assert {c["data"]["format"] for c in coco.values()} == {"coco"}
    assert all(c["data"]["masks"] for c in coco.values())


def test_set_moves_the_pretrained_backbone_or_says_what_to_do() -> None:
    r101 = _jobs("table4", only="method=ba2m", sets=("model.arch=resnet101",))
    (config,) = r101.values()
    assert config["model"]["pretrained"] == "job:" + _table5("resnet101", "ba2m")
    assert not config["comparable"] and config["overrides"] == ["model.arch=resnet101"]
    with pytest.raises(UserError, match="no table5 job trains an ImageNet resnet18") as err:
        _jobs("table4", only="method=baseline", sets=("model.arch=resnet18",))
    assert "\n" not in str(err.value)
    named = _jobs("table4", only="method=baseline",
                  sets=("model.arch=resnet18", "model.pretrained=/w/resnet18.pth"))
    assert next(iter(named.values()))["model"]["pretrained"] == "/w/resnet18.pth"
    with pytest.raises(UserError, match="sampler 'ohem' with retinanet"):
        _jobs("table3", only="method=focal-loss", sets=("model.sampler=ohem",))


@pytest.mark.parametrize("over, message", [
    ({"gpus_per_job": 2}, "runs in one process"),
    ({"dataset": "cifar10"}, "trains a detector"),
    ({"batch_size": 3}, "micro-batches"),
    ({"only": "method=se"}, "matches no row of table4"),
])
def test_bad_detection_options_are_one_line_errors(over: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        _jobs("table4", **over)
    assert "\n" not in str(err.value)
