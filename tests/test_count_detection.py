"""Params and FLOPs of the detection rows (issue #15): one image at the detector's resize limits,
the RoI heads on their test-time caps (harness.costs.counting), ours alone (no paper value)."""

from __future__ import annotations

import csv
import dataclasses
import io
import os

import pytest
import torch
from typer.testing import CliRunner

import suites
from harness.cli import app
from harness.costs import cache, compare
from harness.costs.cache import count_key, count_model, uninitialised
from harness.costs.counting import count_detector, detector_parts
from harness.plan.detector import DetectorSpec
from harness.store.db import ResultsDB
from models.registry import resolved_options

runner = CliRunner()


def small(detector: str = "faster_rcnn", attention: str | None = None, size: int = 64,
          **options: object) -> DetectorSpec:
    """A ResNet-18 detector (FPN 32 wide) on VOC's 21 classes at ``size`` x 1.5 ``size``."""
    resolved = resolved_options("resnet18", "imagenet", attention, {}) if attention else {}
    return DetectorSpec(detector=detector, arch="resnet18", num_classes=21, attention=attention,
                        options=resolved, fpn_channels=32, min_size=size,
                        max_size=size * 3 // 2, **options)


def test_params_are_every_parameter_of_the_detector() -> None:
    spec = small("mask_rcnn", "ba2m")
    assert count_model(spec).params == sum(p.numel() for p in spec.build().parameters())


def test_box_head_is_counted_on_exactly_the_test_time_proposals() -> None:
    """Without BA²M the only linear layers are the box head's: 1000 RoIs of 32 x 7 x 7 through
    fc6 (1024), fc7 (1024) and the predictor (21 scores, 4 x 21 deltas)."""
    counts = count_model(small())
    per_roi = 32 * 7 * 7 * 1024 + 1024 * 1024 + 1024 * 21 + 1024 * 4 * 21
    assert counts.by_operator["linear"] == 1000 * per_roi
    assert not counts.uncounted


def test_flops_are_deterministic_and_grow_with_the_image() -> None:
    """Counted on one image at the resize limits: the same twice, more for larger limits."""
    model = uninitialised(small("retinanet", "ba2m"))
    first, again = count_detector(model), count_detector(model)
    assert (first.macs, first.by_operator) == (again.macs, again.by_operator)
    assert count_model(small("retinanet", "ba2m", size=96)).macs > first.macs > 0


def test_ba2m_adds_params_and_flops() -> None:
    for detector in ("faster_rcnn", "retinanet"):
        base, ours = count_model(small(detector)), count_model(small(detector, "ba2m"))
        assert ours.params > base.params and ours.macs > base.macs
        assert ours.by_operator["pooled_attention"] > 0


@pytest.mark.parametrize(("suite", "padded", "masks"),
                         [("table4", (608, 1024), False), ("table15", (800, 1344), True)])
def test_paper_rows_are_counted_on_the_padded_paper_scale(suite: str, padded: tuple[int, int],
                                                          masks: bool) -> None:
    """A VOC row counts one 1000x600 image and a COCO row one 1333x800 image, padded by the
    detector to multiples of 32; the box head takes 1000 RoIs, the mask head 100."""
    s = suites.get(suite)
    spec = compare.row_spec(s, next(r for r in s.rows if r.method == "ba2m"))
    assert (spec.max_size, spec.min_size) == {"table4": (1000, 600), "table15": (1333, 800)}[suite]
    with torch.device("meta"):  # shapes only: no weights
        model = spec.build().eval()
    parts = detector_parts(model)
    shapes = [tuple(inputs[0].shape) for _, inputs, _ in parts]
    assert shapes[0] == (2, 3, *padded) and parts[0][2] == 2  # BA²M active: two images
    assert shapes[1] == (1000, 256, 7, 7)
    assert shapes[2:] == ([(100, 256, 14, 14)] if masks else [])


def test_detection_rows_are_counted_only_when_asked_and_check_leaves_them_out() -> None:
    """`count --check` (CI's) has no paper value to check them by, and they are slow to count."""
    assert compare.cost_table([suites.get("table3")]) == []
    result = runner.invoke(app, ["count", "--check", "--table", "III", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "III," not in result.stdout


def test_count_lists_detection_rows_as_ours_and_reads_them_back(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`count --table III` lists the three rows, counted (no paper value), and stores them; a
    second run reads them from the database. The rows' detectors are shrunk (ResNet-18 at 64
    px) to keep the test fast; the counting path is the same."""
    row_detector = compare.row_detector
    monkeypatch.setattr(compare, "row_detector", lambda s, r: dataclasses.replace(
        row_detector(s, r), arch="resnet18", fpn_channels=32, min_size=64, max_size=96))
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # count here, no process pool
    monkeypatch.setattr(cache, "_memo", {})
    db = str(tmp_path / "counts.sqlite")
    args = ["count", "--table", "III", "--format", "csv", "--db", db]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    rows = list(csv.DictReader(io.StringIO(first.stdout)))
    assert [r["method"] for r in rows] == ["focal-loss", "ba2m", "softmax-loss"]
    for r in rows:
        assert r["status"] == "counted" and not r["paper_params_m"] and not r["paper_flops_g"]
        assert r["reason"].startswith("ours, not judged") and "one 96x64 image" in r["reason"]
        assert float(r["params_m"]) > 0 and float(r["flops_g"]) > 0
    assert float(rows[1]["flops_g"]) > float(rows[2]["flops_g"])  # BA²M over the same loss
    t3 = suites.get("table3")
    with ResultsDB(db, read_only=True) as rdb:
        for row in t3.rows:
            assert rdb.model_stats(count_key(compare.row_spec(t3, row))) is not None
    monkeypatch.setattr(cache, "_memo", {})
    monkeypatch.setattr(cache, "count_detector", lambda *a: pytest.fail("counted again"))
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
