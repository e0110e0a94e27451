"""Variants a user ran are reachable from the report (issue 16): jobs of a suite that no paper
row uses (``--set``, ``--dataset``, ``--epochs``, another profile) get rows of their own under
the row they vary, labelled with what differs, with their own numbers, never judged; the paper
rows stay as they were.

The quick tests build results frames from the planner's own job configs (no training); the
slow one trains Table VI's baseline row and three variants of it (one epoch on 64 synthetic or
24 tiny PNG images, on the CPU: about 30 s) and writes the report in every format.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import suites
from harness.execute.options import RunOptions
from harness.execute.runner import run_suite
from harness.plan.jobs import expand, profile
from harness.plan.overrides import Overrides
from harness.report.build import build_report
from harness.report.gains import gains_frame
from harness.report.render import write_report
from harness.report.tables import (RowConfigs, build_rows, build_variants, describe_variant,
                                   display_frame, long_frame, match_row)
from harness.store.db import ResultsDB
from harness.store.status import JobStatus

TABLE6 = suites.get("table6")
BASELINE = next(r for r in TABLE6.rows if r.method == "baseline")
SE = next(r for r in TABLE6.rows if r.method == "se")


# --------------------------------------------------------------- frames without training
def _frame(jobs: list, first_id: int, errors: list[float]) -> pd.DataFrame:
    """A results frame (as ``ResultsDB.results_frame``) of completed ``jobs``."""
    return pd.DataFrame([{
        "job_id": first_id + i, "label": j.label, "seed": j.seed, "config_hash": j.config_hash,
        "group_hash": j.group_hash, "status": JobStatus.COMPLETED, "best_top1_err": err,
        "last_top1_err": err + 1, "best_top5_err": err / 2, "config": j.config,
    } for i, (j, err) in enumerate(zip(jobs, errors))])


def _jobs(prof: str = "smoke", **over) -> list:
    return expand(TABLE6, profile(prof), Overrides(only="method=baseline|se", **over))


NO_EVALS = pd.DataFrame(columns=["job_id", "eval_key", "top1_err", "top5_err"])


def test_variants_are_rows_under_the_row_they_vary_and_are_not_judged() -> None:
    plain = _jobs()  # the two rows' own smoke jobs
    arch = _jobs(seeds=2, sets=("model.arch=resnet20", "method=se:model.options.stages=[1,2,3]"))
    longer = expand(TABLE6, profile("smoke"), Overrides(only="method=baseline", epochs=3))
    results = pd.concat([_frame(plain, 1, [40.0, 30.0]),
                         _frame(arch, 10, [50.0, 52.0, 45.0, 47.0]),
                         _frame(longer, 20, [35.0])], ignore_index=True)
    refs = RowConfigs(TABLE6)
    rows = build_rows(TABLE6, results, NO_EVALS, refs)
    base = next(r for r in rows if r.row is BASELINE)
    # the row's own smoke job is shown, not the --epochs one (closer to its profile's job)
    assert base.job_ids == [1] and base.other_groups == 1
    variants = build_variants(TABLE6, rows, results, NO_EVALS, refs)
    got = [(v.row.method, v.built, v.variant, v.n_done, v.top1.median) for v in variants]
    assert got == [  # in row order, then by profile and label
        ("baseline", "ResNet-20 / baseline", "smoke profile; --set model.arch=resnet20", 2, 51.0),
        ("baseline", "ResNet-50 / baseline", "smoke profile; 3 epochs", 1, 35.0),
        ("se", "ResNet-20 / se", "smoke profile; --set model.arch=resnet20, "
         "method=se:model.options.stages=[1,2,3]", 2, 46.0),
    ]
    assert {v.status for v in variants} == {"variant"}
    assert {v.status_text for v in variants} == {"variant (not compared)"}
    # every job is reachable: a paper row's or a variant's
    shown = {j for r in [*rows, *variants] for j in r.job_ids}
    assert shown == set(results["job_id"])
    # variants never enter the gains (computed from the paper rows only)
    assert len(gains_frame(rows)) == sum(r.method != "baseline" for r in TABLE6.rows)

    frame = display_frame(rows, variants)
    flat = frame.droplevel(0, axis=1)
    order = list(zip(flat["Backbone"].iloc[:5], flat["Method"].iloc[:5]))
    assert order == [("ResNet-50", "baseline"), ("↳ ResNet-20", "baseline"),
                     ("↳ ResNet-50", "baseline"), ("ResNet-50", "se"), ("↳ ResNet-20", "se")]
    var = frame[flat["Backbone"].str.startswith("↳").to_numpy()]
    assert (var[("Err (%)", "paper")] == "").all() and (var[("Err (%)", "Δ")] == "").all()
    assert list(var[("Err (%)", "ours")]) == ["51.00", "35.00", "46.00"]
    assert list(var[("Row", "Variant")]) == [v.variant for v in variants]
    # without variants the table is what it was: no Variant column
    assert ("Row", "Variant") not in display_frame(rows).columns
    assert "variant" not in long_frame(rows).columns

    long = long_frame(rows, variants)
    lv = long[long["variant"] != ""]
    assert set(lv["status"]) == {"variant (not compared)"}
    assert lv["paper"].isna().all() and lv["diff"].isna().all()
    assert set(lv["variant_label"]) == {"ResNet-50 / baseline", "ResNet-20 / baseline",
                                        "ResNet-20 / se"}
    assert long[long["variant"] == ""].drop(columns=["variant", "variant_label"]) \
        .reset_index(drop=True).equals(long_frame(rows))


def test_a_variant_is_matched_to_its_row_and_described() -> None:
    refs = RowConfigs(TABLE6)
    job = expand(TABLE6, profile("short"),
                 Overrides(only="method=se", dataset="image-folder", seeds=1,
                           sets=("model.arch=resnet20", "model.options.stages=[1,2,3]")),
                 count_classes=lambda data: 10)[0]
    assert job.config["model"]["arch"] == "resnet20"
    assert match_row(TABLE6, job.config, job.label, refs) is SE
    assert describe_variant(job.config, refs.get(SE, "short")) == (
        "short profile; dataset image-folder (10 classes); --set model.arch=resnet20, "
        "model.options.stages=[1,2,3]")
    batch = expand(TABLE6, profile("paper"), Overrides(only="method=baseline", seeds=1,
                                                       batch_size=64))[0]
    # the lr follows the batch size: not listed; a paper-profile variant names no profile
    assert describe_variant(batch.config, refs.get(BASELINE, "paper")) == "batch size 64"
    assert match_row(TABLE6, batch.config, batch.label, refs) is BASELINE


def test_no_variants_leave_the_rows_as_they_were() -> None:
    plain = _frame(_jobs(), 1, [40.0, 30.0])
    rows = build_rows(TABLE6, plain, NO_EVALS)
    assert build_variants(TABLE6, rows, plain, NO_EVALS) == []
    # jobs of other suites matching by content are the rows' (Table XI shares them), and a
    # suite's detection-style jobs without a model config are never variants
    rows11 = build_rows(suites.get("table11"), plain, NO_EVALS)
    assert sum(r.n_done for r in rows11) == 2
    odd = plain.iloc[:1].assign(job_id=99, group_hash="x",
                                config=[{"suite": "table6", "row": "?", "task": "detection"}])
    assert build_variants(TABLE6, rows, pd.concat([plain, odd]), NO_EVALS) == []


# ------------------------------------------------------------------- a real run, end to end
def _folder(root: Path) -> Path:
    for c, name in enumerate(("ant", "bee", "cat")):
        (root / name).mkdir(parents=True)
        for i in range(10):  # 8 training images a class: more than the smoke batch of 16
            Image.new("RGB", (16, 16), (c * 80, i * 20, 0)).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_a_run_with_variants_reports_them_in_every_format(tmp_path: Path) -> None:
    db, folder = str(tmp_path / "ba2m.sqlite"), _folder(tmp_path / "images")

    def run(**kw) -> None:
        opts = RunOptions(profile="smoke", only="method=baseline", db_url=db, gpus="none",
                          results_dir=str(tmp_path / "results"), progress=False, **kw)
        summary = run_suite("table6", opts)
        assert summary["FAILED"] == 0, summary["failures"]

    run()
    before_db = str(tmp_path / "before.sqlite")
    shutil.copy(db, before_db)
    run(sets=("model.arch=resnet20",), seeds=2)
    run(sets=("model.arch=resnet20",), dataset="image-folder", data_root=str(folder))
    run(dataset="image-folder", data_root=str(folder))

    before = build_report(["table6"], db_url=before_db, costs="none").suites[0]
    after = build_report(["table6"], db_url=db, costs="none").suites[0]
    assert before.variants == []
    # the paper rows are as they were: same jobs, same table, same gains
    assert display_frame(after.rows).equals(display_frame(before.rows))
    assert after.gains.equals(before.gains)
    base = next(r for r in after.rows if r.row is BASELINE)
    assert base.n_done == 1 and base.status_text == "not comparable (smoke profile)"

    variants = {v.variant: v for v in after.variants}
    assert set(variants) == {
        "smoke profile; --set model.arch=resnet20",
        "smoke profile; dataset image-folder (3 classes); --set model.arch=resnet20",
        "smoke profile; dataset image-folder (3 classes)",
    }
    assert all(v.row is BASELINE and v.status == "variant" for v in after.variants)
    two = variants["smoke profile; --set model.arch=resnet20"]
    assert two.built == "ResNet-20 / baseline" and two.n_done == two.n_expected == 2
    with ResultsDB(db, read_only=True) as rdb:
        res = rdb.results_frame("table6")
    mine = res[res["job_id"].isin(two.job_ids)]["best_top1_err"]
    assert math.isclose(two.top1.median, float(mine.median()))
    assert set(res["job_id"]) == {j for r in [*after.rows, *after.variants] for j in r.job_ids}
    assert any("variant row" in m for m in after.messages)

    out = tmp_path / "report"
    write_report(build_report(["table6"], db_url=db, costs="none"),
                 ("markdown", "csv", "latex", "html"), out, figures=False)
    md = (out / "report.md").read_text()
    assert "| ↳ ResNet-20 | baseline |  | smoke profile; --set model.arch=resnet20 |" in md
    assert md.count("variant (not compared)") == 3
    csv = pd.read_csv(out / "report.csv")
    assert csv["variant"].notna().sum() == 3 * len(TABLE6.metrics)
    assert r"$\hookrightarrow$ ResNet-20" in (out / "report.tex").read_text()
    assert '<td class="l nc">variant (not compared)</td>' in (out / "report.html").read_text()
    # a report without variants is written as before: no Variant column anywhere
    plain_out = tmp_path / "plain"
    write_report(build_report(["table6"], db_url=before_db, costs="none"), ("markdown", "csv"),
                 plain_out, figures=False)
    assert "Variant" not in (plain_out / "report.md").read_text()
    assert "variant" not in pd.read_csv(plain_out / "report.csv").columns
