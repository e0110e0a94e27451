"""Data-parallel jobs (harness/training/ddp.py) on the CPU: gloo, 2 processes.

BA²M's batch softmax under DDP (local vs global scope), a job's loss trajectory beside the
one-process run, stop / resume / divergence / a failing rank with no process left behind, the
job configs (recipe, profile, --gpus-per-job) and the runner's GPU slots, and one 2-process job
through the CLI into the database (interrupted with Ctrl-C, then resumed).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as tdist

from harness.execute import runner
from harness.execute.backends import local
from harness.execute.options import RunOptions
from harness.store.db import ResultsDB
from harness.training.ddp import Dist, launch, shard_loader, train_data_parallel
from harness.errors import UserError
from harness.plan.jobs import PROFILES, expand
from harness.plan.overrides import Overrides
from harness.training.checkpoints import Checkpoint
from harness.training.job import open_job_data
from harness.training.loop import Diverged, Hooks, Stopped, train
from models.ba2m import BA2M
from models.protocols import BatchAware
from tests.conftest import wait_for_first_epoch
import suites


def _config(scope: str = "local", gpus: int = 2, **train_kw: Any) -> dict[str, Any]:
    """ResNet-20 with BA²M after its three stages, 8x8 synthetic images, 4 steps of 32."""
    config = {
        "model": {"arch": "resnet20", "form": "cifar", "num_classes": None, "attention": "ba2m",
                  "options": {"stages": [1, 2, 3], "batch_scope": scope}},
        "data": {"provider": "synthetic", "num_classes": 10, "image_size": 8,
                 "train_size": 128, "val_size": 32},
        "train": {"recipe": "test", "epochs": 3, "batch_size": 32, "lr": 0.02, "momentum": 0.9,
                  "weight_decay": 5e-4, "nesterov": True, "milestones": [], "gamma": 0.1,
                  "augment": "crop-flip", "eval_batch_size": 32, "pipeline": "loader"} | train_kw,
        "evals": [], "seed": 0,
    }
    if gpus > 1:
        config["train"]["gpus"] = gpus
    return config


def _spawned_children() -> list[int]:
    """Live processes started by this one with multiprocessing's spawn (the DDP ranks; the
    resource tracker is not one of them)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == me and fields[0] != "Z" and b"spawn_main" in cmd:
            found.append(int(entry.name))
    return found


class _Recorder:
    def __init__(self, stop_after: int | None = None) -> None:
        self.epochs: list[dict[str, float]] = []
        self.stop_after = stop_after

    def hooks(self) -> Hooks:
        return Hooks(on_epoch=lambda e, m: self.epochs.append(m),
                     should_stop=lambda: self.stop_after is not None
                     and len(self.epochs) >= self.stop_after)


# ------------------------------------------------------------------------- BA²M in a group
def _ba2m_ranks(d: Dist, x: torch.Tensor, c: torch.Tensor,
                states: dict[str, dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Each rank takes its half of ``x``; returns, on rank 0, everything gathered."""
    n = x.shape[0] // d.world
    part = slice(d.rank * n, (d.rank + 1) * n)
    out: dict[str, Any] = {}
    for name, state in states.items():
        m = _module(name)
        m.load_state_dict(state)
        xr = x[part].clone().requires_grad_(True)
        w = m.weights(xr)
        (m(xr) * c[part]).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in m.parameters()])
        tdist.all_reduce(grads)  # what DDP does (up to its 1/W average)
        ws, xgs = [torch.empty_like(w) for _ in range(d.world)], \
            [torch.empty_like(xr) for _ in range(d.world)]
        tdist.all_gather(ws, w.detach().contiguous())
        tdist.all_gather(xgs, xr.grad.contiguous())
        m.eval()  # evaluation never gathers: no collective, so no rank may wait on another
        we = m.weights(xr)
        out[name] = {"w": torch.cat(ws), "x_grad": torch.cat(xgs), "grads": grads,
                     "w_eval": we}
    return out


def _module(name: str) -> BA2M:
    scope, scale = name.split("-")
    m = BA2M(32, reduction=8, min_channels=4, batch_scope=scope,  # type: ignore[arg-type]
             batch_scale=scale)  # type: ignore[arg-type]
    m.train()
    for bn in m.modules():  # running statistics: each sample's SAR is its own, as in 1 process
        if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
            bn.eval()
    return m


def test_global_scope_matches_one_process_weights_and_gradients() -> None:
    """In a 2-process group, ``batch_scope="global"`` gives each process its slice of the
    softmax over the whole batch, and the gradients (summed over the processes, as DDP does)
    equal the one-process gradients of the whole batch; "local" normalises each half."""
    torch.manual_seed(1)
    x, c = torch.randn(8, 32, 4, 4), torch.randn(8, 32, 4, 4)
    names = ["global-none", "global-n", "local-none"]
    states = {}
    for name in names:
        m = _module(name)
        for p in m.parameters():  # a non-trivial SAR: random weights everywhere
            torch.nn.init.normal_(p, std=0.5)
        states[name] = {k: v.clone() for k, v in m.state_dict().items()}
    got = launch(_ba2m_ranks, 2, (x, c, states))
    assert not tdist.is_initialized() and not _spawned_children()
    for name in names:
        m = _module(name)
        m.load_state_dict(states[name])
        if name.startswith("local"):  # each half normalised on its own
            halves = [m.weights(x[:4]), m.weights(x[4:])]
            torch.testing.assert_close(got[name]["w"], torch.cat(halves).detach())
            continue
        xs = x.clone().requires_grad_(True)
        w = m.weights(xs)  # no process group now: the softmax over the whole batch
        (m(xs) * c).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in m.parameters()])
        torch.testing.assert_close(got[name]["w"], w.detach())
        torch.testing.assert_close(got[name]["x_grad"], xs.grad)
        torch.testing.assert_close(got[name]["grads"], grads)
        assert grads.abs().sum() > 0
        m.eval()
        torch.testing.assert_close(got[name]["w_eval"], m.weights(x[:4]).detach())
    assert got["global-n"]["w"].sum().item() == pytest.approx(8.0)
    assert got["global-none"]["w"].sum().item() == pytest.approx(1.0)


def _fail_on_rank1(d: Dist) -> str:
    if d.rank == 1:
        raise ValueError("rank one broke")
    tdist.barrier()  # waits for rank 1, which has gone
    return "unreachable"


def test_a_failing_rank_fails_rank_zero_with_its_error() -> None:
    with pytest.raises(RuntimeError, match="rank 1 failed: ValueError: rank one broke"):
        launch(_fail_on_rank1, 2)
    assert not tdist.is_initialized() and not _spawned_children()


# ------------------------------------------------------------------------- data sharding
def test_shards_of_a_global_batch_are_its_consecutive_slices() -> None:
    data = open_job_data(_config())
    full = list(data.train_loader(1, 32, 0))
    shards = [list(shard_loader(data.train_loader(1, 32, 0), r, 2)) for r in range(2)]
    assert len(full) == len(shards[0]) == len(shards[1]) == 4
    for k, (x, y) in enumerate(full):
        torch.testing.assert_close(torch.cat([shards[0][k][0], shards[1][k][0]]), x)
        assert torch.equal(torch.cat([shards[0][k][1], shards[1][k][1]]), y)


# ------------------------------------------------------------------------- whole jobs
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same job (same global batch of 32, same samples per step) on 1 process, and on 2
    with BA²M's softmax local (16 per process) and global (32)."""
    out = {}
    for key, scope, gpus in [("one", "local", 1), ("local", "local", 2), ("global", "global", 2)]:
        rec = _Recorder()
        tmp = tmp_path_factory.mktemp(key)
        run = train_data_parallel if gpus > 1 else train
        result = run(_config(scope, gpus), Checkpoint(tmp / "c.pt"), rec.hooks())
        out[key] = {"result": result, "epochs": rec.epochs, "checkpoint": tmp / "c.pt"}
    assert not _spawned_children()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["local", "global"])
def test_two_process_job_completes_and_records_its_scope(runs: dict[str, Any],
                                                         scope: str) -> None:
    run = runs[scope]
    assert [len(run["epochs"]), run["result"]["epochs"]] == [3, 3]
    assert run["checkpoint"].exists()
    res = run["result"]
    assert res["world_size"] == 2 and res["per_gpu_batch"] == 16
    assert res["batch_scope"] == scope
    # rank 0 evaluates at the batch BA²M's softmax saw in training
    assert res["eval_batch_size"] == (16 if scope == "local" else 32)
    assert 0 <= res["best_top1_err"] <= 100
    assert "world_size" not in runs["one"]["result"]  # one process: the result is unchanged


@pytest.mark.slow
def test_two_process_loss_trajectory_tracks_one_process(runs: dict[str, Any]) -> None:
    """Same samples per step and the same update rule: the 2-process losses follow the
    1-process ones. Not equal: each process's BatchNorm (and, for the local scope, BA²M's
    softmax) sees 16 images instead of 32. Tolerance: the first epoch starts from the same
    weights, so it agrees to 0.1 nats (its loss is about ln 10 = 2.30); later epochs may
    drift by 15 % of the one-process loss; every run learns (last epoch below the first).
    lr 0.02: since BA²M's residual default learns in earnest (not at the literal reading's
    1/N logit scale), lr 0.1 made the 12-step trajectories chaotic (one process 2.48 -> 0.82,
    two 2.46 -> 2.13), which says nothing about data parallelism."""
    one = [m["train_loss"] for m in runs["one"]["epochs"]]
    assert one[-1] < one[0]
    for key in ("local", "global"):
        two = [m["train_loss"] for m in runs[key]["epochs"]]
        assert all(math.isfinite(v) for v in two), two
        assert two[-1] < two[0], (key, two)
        assert abs(two[0] - one[0]) < 0.1, (key, two, one)
        assert all(abs(a - b) < 0.15 * b for a, b in zip(two, one)), (key, two, one)
        assert all(m["lr"] == 0.02 for m in runs[key]["epochs"])


@pytest.mark.slow
def test_two_process_job_stops_cleanly_then_resumes_to_the_same_numbers(
        runs: dict[str, Any], tmp_path: Path) -> None:
    """Stopped after epoch 1 (the runner's should_stop): the other rank is gone; the rerun
    loads rank 0's checkpoint on both ranks and ends with the uninterrupted run's numbers."""
    rec = _Recorder(stop_after=1)
    with pytest.raises(Stopped, match="stopped after epoch 1"):
        train_data_parallel(_config("local"), Checkpoint(tmp_path / "c.pt"), rec.hooks())
    assert not tdist.is_initialized() and not _spawned_children()
    resumed: list[tuple[int, str]] = []
    rec = _Recorder()
    hooks = replace(rec.hooks(), on_resume=lambda e, note: resumed.append((e, note)))
    result = train_data_parallel(_config("local"), Checkpoint(tmp_path / "c.pt"), hooks)
    assert resumed == [(1, "resumed from checkpoint after epoch 1")]
    straight = runs["local"]["epochs"]
    assert len(rec.epochs) == 3  # epoch 1 replayed from the checkpoint, then 2 and 3
    for got, want in zip(rec.epochs, straight):
        for key in ("train_loss", "train_err", "val_loss", "top1_err"):
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
    assert result["last_top1_err"] == pytest.approx(runs["local"]["result"]["last_top1_err"])
    assert not _spawned_children()


def test_divergence_on_any_rank_stops_every_rank(tmp_path: Path) -> None:
    with pytest.raises(Diverged, match="diverged at epoch 1"):
        train_data_parallel(_config("local", lr=1e12, epochs=1), Checkpoint(tmp_path / "c.pt"))
    assert not (tmp_path / "c.pt").exists()  # nothing saved from a diverged epoch
    assert not tdist.is_initialized() and not _spawned_children()


def test_the_loop_alone_refuses_a_data_parallel_job(tmp_path: Path) -> None:
    """train() never starts processes: a W > 1 job goes through train_data_parallel."""
    with pytest.raises(ValueError, match="asks for 2 data-parallel processes"):
        train(_config("local"), Checkpoint(tmp_path / "c.pt"))
    assert not (tmp_path / "c.pt").exists() and not _spawned_children()


def test_ba2m_is_batch_aware() -> None:
    """What the loop and ddp record of BA²M (eval mode, batch scope) they find through
    models.protocols.BatchAware, not by its class."""
    assert isinstance(_module("global-none"), BatchAware)
    assert not isinstance(torch.nn.Conv2d(1, 1, 1), BatchAware)


# ------------------------------------------------------------------------- configs, slots
def test_gpus_per_job_in_configs() -> None:
    imagenet, cifar = suites.get("table5"), suites.get("table7")
    paper, smoke = PROFILES["paper"], PROFILES["smoke"]
    jobs = expand(imagenet, paper, Overrides(seeds=1, only="method=ba2m"))
    assert {j.config["train"]["gpus"] for j in jobs} == {8}  # the paper's eight cards
    assert all("gpus" not in j.config["train"] for j in expand(imagenet, smoke))
    assert all("gpus" not in j.config["train"] for j in expand(cifar, paper))
    # --gpus-per-job sets every job; 1 gives the single-device job its old identity back
    two = expand(cifar, smoke, Overrides(gpus_per_job=2))
    assert {j.config["train"]["gpus"] for j in two} == {2}
    one = expand(imagenet, paper, Overrides(seeds=1, only="method=ba2m", gpus_per_job=1))
    assert all("gpus" not in j.config["train"] for j in one)
    assert {j.config_hash for j in one}.isdisjoint(j.config_hash for j in jobs)
    with pytest.raises(UserError, match="batch size 16 does not split evenly over 3 GPUs"):
        expand(cifar, smoke, Overrides(gpus_per_job=3))
    with pytest.raises(UserError, match="--gpus-per-job must be a positive integer"):
        expand(cifar, smoke, Overrides(gpus_per_job=0))


@pytest.mark.parametrize(("value", "message"), [
    ("3", "batch size 16 does not split evenly over 3 GPUs per job"),
    ("0", "--gpus-per-job must be a positive integer, got 0"),
])
def test_cli_refuses_a_bad_gpus_per_job(tmp_path: Path, value: str, message: str) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    out = CliRunner().invoke(app, ["run", "table7", "--gpus", "none", "--gpus-per-job", value,
                                   "--db", str(tmp_path / "db.sqlite")])
    assert out.exit_code == 2 and message in out.output, out.output
    assert not (tmp_path / "db.sqlite").exists()


def test_slots_group_gpus_for_multi_gpu_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "_gpu_count", lambda: 5)
    assert local.slots("all", 1, 2) == ["0,1", "2,3"]  # GPU 4 stays idle
    assert local.slots("all", 2, 2) == ["0,1", "0,1", "2,3", "2,3"]
    assert local.slots("1,2,3", 1, 3) == ["1,2,3"]
    assert local.slots("all", 1) == ["0", "1", "2", "3", "4"]  # 1-GPU jobs: unchanged
    assert local.slots("none", 1, 8) == [None]  # CPU: the job's 8 processes use gloo
    with pytest.raises(UserError, match="need 8 GPUs each .* --gpus gives 5"):
        local.slots("all", 1, 8)
    monkeypatch.setattr(local, "_gpu_count", lambda: 0)
    assert local.slots("all", 1, 2) == [None]


# ------------------------------------------------------------------------- through the CLI
SETS = ("model.arch=resnet20", "model.options.stages=[1,2,3]", "data.image_size=8",
        "data.train_size=256")
EPOCHS = 3  # 16 steps each: Ctrl-C, sent after epoch 1 is recorded, lands before the last one


def _cli(tmp: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "run", "table7", "--profile", "smoke",
            "--only", "setting=between", *(a for s in SETS for a in ("--set", s)),
            "--epochs", str(EPOCHS), "--gpus-per-job", "2", "--gpus", "none", "--no-progress",
            "--db", str(tmp / "db.sqlite"), "--results-dir", str(tmp / "results")]


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_cli_two_process_job_interrupted_then_resumed_into_one_row(tmp_path: Path) -> None:
    """Ctrl-C during a 2-process job releases it and leaves no process of the run alive; the
    rerun resumes it from rank 0's checkpoint and stores one result row saying how it ran."""
    proc = subprocess.Popen(_cli(tmp_path), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db_path = str(tmp_path / "db.sqlite")
    wait_for_first_epoch(proc, db_path)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the runner, its worker and rank 1
    proc.wait(timeout=120)
    for _ in range(50):  # the session empties: no rank outlives the run
        if not _session(proc.pid):
            break
        time.sleep(0.2)
    assert not _session(proc.pid)
    with ResultsDB(db_path) as db:
        assert db.jobs_frame().iloc[0]["status"] == "PENDING"
        assert db.attempts_frame()["exit_reason"].tolist() == ["interrupted"]
        recorded = len(db.epochs_frame(db.jobs_frame()["config_hash"][0]))
    summary = runner.run_suite("table7", RunOptions(  # the same command, in-process
        profile="smoke", db_url=db_path, results_dir=str(tmp_path / "results"), gpus="none",
        progress=False, only="setting=between", epochs=EPOCHS, gpus_per_job=2, sets=SETS))
    assert summary["COMPLETED"] == 1 and not summary["failures"], summary
    with ResultsDB(db_path) as db:
        res = db.results_frame("table7")
        assert len(res) == 1 and res["best_top1_err"].between(0, 100).all()
        row = res.iloc[0]
        assert row["config"]["train"]["gpus"] == 2
        assert row["config"]["model"]["options"]["batch_scope"] == "local"
        assert row["extra"]["world_size"] == 2 and row["extra"]["batch_scope"] == "local"
        assert row["extra"]["per_gpu_batch"] == 8
        attempts = db.attempts_frame()
        assert attempts["exit_reason"].tolist() == ["interrupted", "completed"]
        resumed = attempts["resumed_from_epoch"].iloc[1]
        # rank 0's checkpoint is saved before its epoch row: it is that row or one further
        assert 1 <= recorded <= resumed <= recorded + 1 and resumed < EPOCHS, (recorded, resumed)
        assert len(db.epochs_frame(row["config_hash"])) == EPOCHS
