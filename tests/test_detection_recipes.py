"""The detection recipes of issue #15 (MMDetection v1's numbers, each with its source), and
the suites that train with them."""

from __future__ import annotations

import pytest

from harness.plan.jobs import PROFILES, expand
from suites import get as get_suite
from suites.recipes import DETECTION_RECIPES, MMDET_COCO_2X, MMDET_VOC0712


def test_coco_2x_numbers() -> None:
    r = MMDET_COCO_2X
    assert (r.epochs, r.milestones, r.gamma) == (24, (16, 22), 0.1)
    assert (r.batch_size, r.lr, r.gpus, r.images_per_gpu) == (16, 0.02, 8, 2)
    assert (r.momentum, r.weight_decay, r.grad_clip) == (0.9, 1e-4, 35.0)
    assert (r.warmup_iters, r.scale) == (500, (1333, 800))


def test_voc_numbers() -> None:
    r = MMDET_VOC0712
    assert (r.epochs, r.milestones, r.batch_size, r.lr) == (12, (9,), 16, 0.01)
    assert r.scale == (1000, 600)


@pytest.mark.parametrize("recipe", DETECTION_RECIPES.values(), ids=DETECTION_RECIPES)
def test_every_number_has_a_source(recipe) -> None:
    for key in ("epochs", "milestones", "lr", "batch_size", "momentum", "weight_decay",
                "warmup", "grad_clip", "scale", "flip"):
        assert recipe.sources.get(key), f"{recipe.name}: no source for {key}"


def test_lr_schedule() -> None:
    r = MMDET_COCO_2X
    assert r.lr_at(0, 0) == pytest.approx(0.02 / 3)  # warm-up starts at lr / 3
    assert r.lr_at(250, 0) == pytest.approx(0.02 * (1 / 3 + 2 / 3 * 0.5))
    assert r.lr_at(500, 0) == pytest.approx(0.02)
    assert r.lr_at(10**6, 15) == pytest.approx(0.02)
    assert r.lr_at(10**6, 16) == pytest.approx(0.002)
    assert r.lr_at(10**6, 22) == pytest.approx(0.0002)
    assert r.lr_at(10**6, 0, batch_size=2) == pytest.approx(0.0025)  # linear scaling


def test_detection_suites_train_with_their_recipe() -> None:
    """Tables III-IV train with the VOC recipe, XIV-XVI with the COCO 2x one; every job of
    every profile is runnable and records its recipe."""
    expected = {"table3": MMDET_VOC0712, "table4": MMDET_VOC0712, "table14": MMDET_COCO_2X,
                "table15": MMDET_COCO_2X, "table16": MMDET_COCO_2X}
    for name, recipe in expected.items():
        suite = get_suite(name)
        assert suite.task == "detection" and suite.recipe is recipe
        assert recipe.name in DETECTION_RECIPES
        for prof in PROFILES.values():
            jobs = expand(suite, prof)
            assert jobs and all(j.unavailable is None for j in jobs)
            assert {j.config["train"]["recipe"] for j in jobs} == {recipe.name}
