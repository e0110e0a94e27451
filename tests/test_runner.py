"""The main job end to end: a smoke suite into a temporary SQLite file, resume after Ctrl-C,
a diverging job, the real-data check on the image-folder provider."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import suites
from harness.store.db import ResultsDB
from harness.execute.options import RunOptions
from harness.execute.runner import run_suite
from harness.training.checkpoints import Checkpoint
from harness.training.loop import Diverged, train
from tests.conftest import SHARED_DATA, SmokeDB, wait_for_first_epoch


def _opts(tmp: Path, **kw: object) -> RunOptions:
    return RunOptions(profile="smoke", db_url=str(tmp / "db.sqlite"),
                      results_dir=str(tmp / "results"), gpus="none", progress=False, **kw)


def test_smoke_suite_end_to_end(smoke_db: SmokeDB) -> None:
    """The session's smoke run of table7 (tests/conftest.py: both rows, 2 seeds, through
    ``run_suite`` into a temporary SQLite file), then the same run again."""
    summary = smoke_db.summaries["table7"]
    assert summary["COMPLETED"] == 4 and not summary["failures"]
    with ResultsDB(smoke_db.db) as db:
        res = db.results_frame("table7")
        assert sorted(res["label"]) == ["ResNet-50 / ba2m / between"] * 2 + \
            ["ResNet-50 / ba2m / inside"] * 2
        assert res["best_top1_err"].between(0, 100).all()
        opts = [c["model"]["options"] for c in res["config"]]
        assert {o["position"] for o in opts} == {"inside", "between"}
        att = db.attempts_frame()
        assert (att["exit_reason"] == "completed").all() and att["git_commit"].str.len().gt(6).all()
        # a second run finds nothing to do and duplicates nothing
        before = db.content_hash()
    again = run_suite("table7", smoke_db.options("table7"))
    assert again["COMPLETED"] == 4
    with ResultsDB(smoke_db.db) as db:
        assert db.content_hash() == before


def test_unavailable_rows_fail_with_their_reason(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A row the harness cannot build yet is FAILED with what is missing, never faked."""
    table7 = suites.get("table7")
    rows = tuple(replace(r, available="a part the zoo lacks") for r in table7.rows)
    monkeypatch.setattr(suites, "get", lambda name: replace(table7, rows=rows))
    summary = run_suite("table7", _opts(tmp_path, seeds=1))
    assert summary["FAILED"] == 2 and summary["COMPLETED"] == 0
    assert all(f["reason"].startswith("not yet available: a part the zoo lacks")
               for f in summary["failures"])
    with ResultsDB(str(tmp_path / "db.sqlite")) as db:
        assert db.results_frame()["best_top1_err"].isna().all()


def _cli(tmp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "run", "table7", "--profile", "smoke",
            "--only", "setting=between", "--epochs", "2", "--gpus", "none", "--no-progress",
            "--db", str(tmp / "db.sqlite"), "--results-dir", str(tmp / "results"), *extra]


@pytest.mark.slow
def test_interrupt_then_rerun_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    proc = subprocess.Popen(_cli(tmp_path), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db_path = str(tmp_path / "db.sqlite")
    wait_for_first_epoch(proc, db_path)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the runner and its worker
    proc.wait(timeout=120)
    with ResultsDB(db_path) as db:
        job = db.jobs_frame().iloc[0]
        assert job["status"] == "PENDING"
        assert db.attempts_frame()["exit_reason"].tolist() == ["interrupted"]
        recorded = len(db.epochs_frame(job["config_hash"]))
    done = subprocess.run(_cli(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: these numbers are NOT comparable with the paper's (smoke profile)." in done.stdout
    with ResultsDB(db_path) as db:
        assert db.status_counts()["COMPLETED"] == 1
        attempts = db.attempts_frame()
        assert attempts["exit_reason"].tolist() == ["interrupted", "completed"]
        # from the checkpoint, never from scratch: a checkpoint is saved just before its epoch
        # row, so Ctrl-C between the two leaves it one epoch ahead of the rows
        assert recorded <= attempts["resumed_from_epoch"].iloc[1] <= recorded + 1
        epochs = db.epochs_frame(job["config_hash"])
        assert epochs["epoch"].tolist() == [1, 2]
        assert len(db.results_frame().dropna(subset=["best_top1_err"])) == 1


def _small_config(data: dict, **train: object) -> dict:
    return {
        "model": {"arch": "resnet20", "form": "cifar", "num_classes": None, "attention": None,
                  "options": {}},
        "data": data,
        "train": {"recipe": "test", "epochs": 3, "batch_size": 64, "lr": 0.1, "momentum": 0.9,
                  "weight_decay": 5e-4, "nesterov": True, "milestones": [2], "gamma": 0.1,
                  "augment": "crop-flip", "eval_batch_size": 256} | train,
        "evals": [], "seed": 0,
    }


def test_diverging_job_raises_with_the_epoch(tmp_path: Path) -> None:
    config = _small_config({"provider": "synthetic", "num_classes": 10, "image_size": 16,
                            "train_size": 128, "val_size": 32}, lr=1e12, epochs=1)
    with pytest.raises(Diverged, match="diverged at epoch 1"):
        train(config, Checkpoint(tmp_path / "c.pt"))


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "cifar10-test").is_dir(),
                    reason="../shared/data/cifar10-test is absent")
def test_learns_real_images_through_the_image_folder_provider(tmp_path: Path) -> None:
    """ResNet-20 on 3,000 real CIFAR-10 photographs (16x16) beats chance (90 % error) clearly
    on 500 held-out ones."""
    config = _small_config({"provider": "image-folder",
                            "data_root": str(SHARED_DATA / "cifar10-test"), "image_size": 16,
                            "train_size": 3000, "val_size": 500}, epochs=4, milestones=[3])
    result = train(config, Checkpoint(tmp_path / "c.pt"))
    assert result["best_top1_err"] < 70, result
