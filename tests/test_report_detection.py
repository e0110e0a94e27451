"""The detection tables (III, IV, XIV, XV, XVI) beside the paper: per-metric values, the
detection rule, statuses, variants, gains, provenance and every format.

No training: the planner's own job configs are stored with ``ResultsDB`` and completed with
results as a detection job stores them (metrics in percent, under ``extra["metrics"]``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import suites
from harness.cli import app
from harness.plan.jobs import Job, expand, profile
from harness.plan.overrides import Overrides
from harness.report import build_report, write_report
from harness.report.stats import DETECTION_TOLERANCE_POINTS
from harness.report.tables import display_frame, long_frame
from harness.store.db import JobSpec, ResultsDB

COMMIT = "0123456789abcdef0123"
COCO_KEYS = ("ap", "ap50", "ap75", "aps", "apm", "apl")


def _jobs(name: str, prof: str = "paper", **over: Any) -> list[Job]:
    return expand(suites.get(name), profile(prof), Overrides(**over))


def _store(db: ResultsDB, name: str, jobs: list[Job],
           metrics: dict[str, dict[str, float]]) -> None:
    """Insert ``jobs`` under suite ``name``; complete those whose row's method is a key of
    ``metrics`` with those numbers (as the detection loop's result)."""
    db.add_jobs([JobSpec(j.config_hash, j.group_hash, j.label, j.seed, j.config) for j in jobs],
                name)
    for j in jobs:
        if j.row.method not in metrics:
            continue
        claimed = db.claim([j.config_hash], "tester", 60.0, attempt_info={
            "git_commit": COMMIT, "git_dirty": False, "gpu_name": "NVIDIA H200"})
        assert claimed is not None
        assert db.complete(claimed.job_id, claimed.attempt_id, {
            "epochs": j.config["train"]["epochs"], "eval_mode": "identity",
            "eval_batch_size": 1, "metrics": metrics[j.row.method], "ap_per_class": {}})


def _coco(box: tuple[float, ...], mask: tuple[float, ...]) -> dict[str, float]:
    return {**{f"{k}_bb": v for k, v in zip(COCO_KEYS, box)},
            **{f"{k}_mask": v for k, v in zip(COCO_KEYS, mask)}}


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Table IV's three rows at the paper profile (baseline within the tolerance, OHEM 1.5
    mAP below the paper, BA²M with no recall stored) and the baseline's smoke job; Table XIV's
    ResNet-50 baseline at the smoke profile only; Table XV's ResNet-50 + BA²M Mask R-CNN at
    the paper profile (box and mask AP: Table XVI's row too)."""
    path = str(tmp_path_factory.mktemp("detection") / "ba2m.sqlite")
    with ResultsDB(path) as db:
        _store(db, "table4", _jobs("table4"), {
            "baseline": {"recall": 93.20, "map": 79.70},
            "ohem": {"recall": 90.60, "map": 79.00},
            "ba2m": {"map": 81.00},
        })
        _store(db, "table4", _jobs("table4", "smoke", only="method=baseline"),
               {"baseline": {"recall": 12.0, "map": 3.5}})
        _store(db, "table14", _jobs("table14", "smoke", only="backbone=ResNet-50"),
               {"baseline": _coco((1.0,) * 5 + (-1.0,), (0.5,) * 6)})  # no large object
        _store(db, "table15", _jobs("table15", only="backbone=ResNet-50"), {
            "ba2m": _coco((39.9, 61.0, 43.6, 23.1, 43.0, 52.0),
                          (36.2, 57.9, 38.7, 17.1, 38.6, 53.9)),
        })
    return path


def _rows(db_path: str, name: str) -> dict[str, Any]:
    sr = build_report([name], db_path, costs="none").suites[0]
    return {f"{r.row.backbone} {r.row.method}": r for r in sr.rows}


# ------------------------------------------------------------------------ statuses
def test_paper_runs_are_judged_by_the_detection_rule(db_path: str) -> None:
    rows = _rows(db_path, "table4")
    base, ohem, ba2m = rows["ResNet-50 baseline"], rows["ResNet-50 ohem"], rows["ResNet-50 ba2m"]
    # |93.20 - 92.97| and |79.70 - 80.10| are within the tolerance: reproduced
    assert base.status == "reproduced" and base.profile == "paper" and base.comparable
    assert base.reproduced("recall") == pytest.approx(93.20)
    assert base.reproduced("map") == pytest.approx(79.70)
    assert base.source == "final evaluation" and base.other_groups == 1  # the smoke job
    # recall within, mAP 1.5 points below 80.50: differs
    assert ohem.status == "differs"
    assert ba2m.status == "differs" and ba2m.status_text == "differs (no recall stored)"
    assert math.isnan(ba2m.reproduced("recall")) and ba2m.reproduced("map") == 81.0
    assert DETECTION_TOLERANCE_POINTS == 0.5
    assert all(math.isnan(r.reproduced("top1_err")) for r in rows.values())


def test_smoke_runs_are_not_comparable_and_rows_without_jobs_pending(db_path: str) -> None:
    rows = _rows(db_path, "table14")
    smoke = rows["ResNet-50 baseline"]
    assert smoke.status_text == "not comparable (smoke profile)"
    assert smoke.reproduced("ap_bb") == 1.0
    assert math.isnan(smoke.reproduced("apl_bb"))  # COCOeval's -1 (no large object): no value
    for key in ("ResNet-50 ba2m", "ResNet-101 baseline", "ResNet-101 ba2m"):
        assert rows[key].status_text == "pending (0/1 seeds)"
    report = build_report(["table14"], db_path, costs="none")
    assert report.banner and "table14" in report.banner
    table3 = _rows(db_path, "table3")  # no job at all, and a control row without paper values
    assert {r.status_text for r in table3.values()} == {"pending (0/1 seeds)"}


def test_one_mask_rcnn_job_fills_the_box_and_the_mask_table(db_path: str) -> None:
    box, mask = _rows(db_path, "table15"), _rows(db_path, "table16")
    assert box["ResNet-50 ba2m"].job_ids == mask["ResNet-50 ba2m"].job_ids
    assert box["ResNet-50 ba2m"].reproduced("ap_bb") == pytest.approx(39.9)
    r = mask["ResNet-50 ba2m"]
    assert [r.reproduced(f"{k}_mask") for k in COCO_KEYS] == [36.2, 57.9, 38.7, 17.1, 38.6, 53.9]
    # APL 53.9 against 52.90: one metric a point off makes the row differ
    assert r.status == "differs" and box["ResNet-50 ba2m"].status == "reproduced"


# -------------------------------------------------------------------------- tables
def test_the_table_prints_each_metric_beside_the_paper(db_path: str) -> None:
    sr = build_report(["table4"], db_path, costs="none").suites[0]
    frame = display_frame(sr.rows, sr.variants)
    flat = frame.droplevel(0, axis=1)
    assert list(flat["Backbone"]) == ["ResNet-50", "↳ ResNet-50", "ResNet-50", "ResNet-50"]
    paper = frame[~flat["Backbone"].str.startswith("↳").to_numpy()]
    assert list(paper[("Recall", "paper")]) == ["92.97", "90.57", "93.99"]
    assert list(paper[("Recall", "ours")]) == ["93.20", "90.60", ""]
    assert list(paper[("mAP", "Δ")]) == ["-0.40", "-1.50", "+0.00"]
    assert ("mAP over seeds", "best / last epoch") not in frame.columns
    assert list(flat["status"]) == ["reproduced", "variant (not compared)", "differs",
                                    "differs (no recall stored)"]
    long = long_frame(sr.rows, sr.variants)
    recall = long[(long["metric"] == "recall") & (long["variant"] == "")]
    assert list(recall["paper"]) == [92.97, 90.57, 93.99]
    assert recall["diff"].iloc[0] == pytest.approx(0.23)
    assert set(recall["source"]) == {"final evaluation"}


def test_gains_are_method_minus_baseline_ap(db_path: str) -> None:
    sr = build_report(["table4"], db_path, costs="none").suites[0]
    gains = sr.gains.set_index("method")
    assert set(gains["metric"]) == {"map"}
    assert gains.loc["ba2m", "paper_gain"] == pytest.approx(81.00 - 80.10)
    assert gains.loc["ohem", "gain"] == pytest.approx(79.00 - 79.70)
    assert gains.loc["ba2m", "note"] == "needs >= 2 completed seeds each (have 1 and 1)"


def test_provenance_lists_the_detection_jobs(db_path: str) -> None:
    prov = build_report(["table4"], db_path, costs="none").suites[0].provenance
    assert prov["recipe"] == "mmdet-voc0712"
    assert prov["code version"] == COMMIT[:12]
    assert prov["batch size (train / eval)"] == "16 / -"
    assert "faster_rcnn (sampler=ohem, ohem_rank_by=cls): norm=eval" in prov["detectors"]
    assert "min_size=600, max_size=1000" in prov["detectors"]


# ------------------------------------------------------------------------- formats
def test_every_format_from_the_command_line(db_path: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "table4", "XVI", "--db", db_path, "--out",
                                      str(out), "-f", "markdown", "-f", "latex", "-f", "csv",
                                      "-f", "html"])
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert ("| ResNet-50 | ohem | Faster R-CNN |  | 90.57 | 90.60 | +0.03 | 80.50 | 79.00 | -1.50 |"
            in md)  # the empty cell: the Variant column (the baseline's smoke job)
    assert "| AP mask paper | AP mask ours | AP mask Δ |" in md
    assert "status rule (detection)" in md and "method − baseline mAP" in md
    assert (out / "figures" / "table4-scatter.png").exists()
    tex = (out / "report.tex").read_text()
    assert "90.57 & 90.60 & +0.03" in tex and "AP\\_S mask" in tex
    csv = pd.read_csv(out / "report.csv")
    mask = csv[(csv["table"] == "XVI") & (csv["backbone"] == "ResNet-50")
               & (csv["method"] == "ba2m")]
    assert list(mask["metric"]) == [f"{k}_mask" for k in COCO_KEYS]
    assert list(mask["reproduced"]) == [36.2, 57.9, 38.7, 17.1, 38.6, 53.9]
    html = (out / "report.html").read_text()
    assert '<td class="l ok">reproduced</td>' in html
    assert '<td class="l bad">differs</td>' in html


def test_an_empty_database_shows_the_paper_values(tmp_path: Path) -> None:
    report = build_report(["table3", "table16"], str(tmp_path / "none.sqlite"), costs="none")
    files = write_report(report, ["markdown"], tmp_path / "r", figures=False)
    md = files["markdown"].read_text()
    assert "| ResNet-50 | focal-loss | RetinaNet | 96.27 |" in md
    assert "| ResNet-101 | ba2m | Mask R-CNN | 37.70 |" in md
    assert all(r.status_text == "pending (0/1 seeds)" for sr in report.suites for r in sr.rows)
