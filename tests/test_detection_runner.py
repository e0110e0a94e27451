"""A detection job's pretrained backbone (harness/execute/dependencies.py): the runner stops
with the command that trains the ImageNet job it starts from, before storing anything."""

from __future__ import annotations

from pathlib import Path

import pytest

import suites
from harness.errors import UserError
from harness.execute.dependencies import check_pretrained
from harness.execute.options import RunOptions
from harness.execute.runner import run_suite
from harness.plan.jobs import expand, profile
from harness.plan.overrides import Overrides
from harness.store.db import JobSpec, ResultsDB


def _opts(tmp: Path, **kw: object) -> RunOptions:
    return RunOptions(profile="paper", db_url=str(tmp / "db.sqlite"),
                      results_dir=str(tmp / "results"), gpus="none", progress=False, **kw)


def _backbone_job(tmp: Path, *, complete: bool, checkpoint: bool) -> str:
    """Table V's ResNet-50 baseline (seed 0, paper profile) stored, completed or not, with or
    without its checkpoint file; returns its config hash."""
    (job,) = expand(suites.get("table5"), profile("paper"),
                    Overrides(seeds=1, only="arch=resnet50,method=baseline"))
    with ResultsDB(str(tmp / "db.sqlite")) as db:
        db.add_jobs([JobSpec(job.config_hash, job.group_hash, job.label, 0, job.config)],
                    "table5")
        if complete:
            claimed = db.claim([job.config_hash], "tester", 60.0)
            assert claimed is not None
            db.complete(claimed.job_id, claimed.attempt_id, {"best_top1_err": 23.0})
    if checkpoint:
        path = tmp / "results" / "checkpoints" / f"{job.config_hash}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    return job.config_hash


def _baseline(tmp: Path) -> list:
    return expand(suites.get("table4"), profile("paper"), Overrides(only="method=baseline"))


def test_a_missing_backbone_job_stops_the_run_with_its_command(tmp_path: Path) -> None:
    opts = _opts(tmp_path, only="method=baseline")
    with pytest.raises(UserError) as err:
        run_suite("table4", opts)
    text = str(err.value)
    assert "\n" not in text and "not in the database" in text
    assert ("ba2m-bench run table5 --profile paper --only arch=resnet50,method=baseline "
            "--seeds 1") in text
    assert not (tmp_path / "db.sqlite").exists()  # nothing stored


@pytest.mark.parametrize("complete, checkpoint, state", [
    (False, False, "PENDING"),
    (True, False, "checkpoint"),
])
def test_an_unfinished_backbone_job_stops_the_run(tmp_path: Path, complete: bool,
                                                 checkpoint: bool, state: str) -> None:
    h = _backbone_job(tmp_path, complete=complete, checkpoint=checkpoint)
    with pytest.raises(UserError, match=state) as err:
        check_pretrained(_baseline(tmp_path), _opts(tmp_path))
    assert h in str(err.value)


def test_a_completed_backbone_job_lets_the_job_run(tmp_path: Path) -> None:
    h = _backbone_job(tmp_path, complete=True, checkpoint=True)
    jobs = _baseline(tmp_path)
    assert jobs[0].config["model"]["pretrained"] == f"job:{h}"
    check_pretrained(jobs, _opts(tmp_path))


def test_a_missing_weights_file_stops_the_run(tmp_path: Path) -> None:
    missing = str(tmp_path / "resnet50.pth")
    jobs = expand(suites.get("table4"), profile("paper"),
                  Overrides(only="method=baseline", sets=(f"model.pretrained={missing}",)))
    with pytest.raises(UserError, match="is not a file"):
        check_pretrained(jobs, _opts(tmp_path))
    Path(missing).write_bytes(b"weights")
    check_pretrained(jobs, _opts(tmp_path))


def test_the_audit_refuses_a_detection_suite(tmp_path: Path) -> None:
    from harness.execute.audit import run_audit

    with pytest.raises(UserError, match="table4 is a detection suite") as err:
        run_audit(str(tmp_path / "db.sqlite"), str(tmp_path / "results"), suite="table4")
    assert "\n" not in str(err.value)


def test_a_step_larger_than_the_training_set_is_refused(tmp_path: Path) -> None:
    opts = RunOptions(profile="smoke", db_url=str(tmp_path / "db.sqlite"),
                      results_dir=str(tmp_path / "results"), gpus="none", progress=False,
                      only="method=baseline", batch_size=2, data_root=str(tmp_path / "data"),
                      sets=("data.train_size=1", "data.val_size=1"))
    with pytest.raises(UserError, match="batch size 2 exceeds the 1 training images of shapes"):
        run_suite("table4", opts)
    assert not (tmp_path / "db.sqlite").exists()
