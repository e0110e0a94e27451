"""The Ray backend on a local Ray with two logical GPUs (no real GPU needed: training runs on
the CPU): a smoke suite completes each job once, GPU ids never collide, a killed worker's task
is retried and its job completes once, Ctrl-C's cancel releases the job."""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

from harness.store.db import ResultsDB  # noqa: E402
from harness.errors import UserError  # noqa: E402
from harness.execute.backends.ray import as_task, pin_devices, run_job, task_resources  # noqa: E402
from harness.execute.options import RunOptions  # noqa: E402
from harness.execute.runner import plan, run_suite  # noqa: E402
from harness.store.workerid import machine_prefix  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Any:
    """One local Ray for the module: 2 logical GPUs, and 4 logical CPUs so that the two
    smoke jobs (2 CPUs each: they use the DataLoader) run side by side."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, object_store_memory=128 * 1024**2,
             logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


def _opts(tmp: Path, **kw: Any) -> RunOptions:
    return RunOptions(profile="smoke", db_url=str(tmp / "db.sqlite"),
                      results_dir=str(tmp / "results"), gpus="none", progress=False,
                      backend="ray", **kw)


#: Table VII's two smoke jobs on ResNet-20 instead of ResNet-50: the same suite, jobs and code
#: path, a tenth of the training time on a small CPU
SMALL = ("model.arch=resnet20", "model.options.stages=[1,2,3]")


def _visible(note: str) -> str:
    found = re.search(r"CUDA_VISIBLE_DEVICES=(\S*)", note or "")
    assert found, note
    return found.group(1)


def test_the_drivers_own_gpus_do_not_limit_ray_jobs(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """ImageNet jobs ask for 8 GPUs: a one-GPU machine refuses them locally, but as a Ray
    driver it only submits them (the cluster places them)."""
    from harness.execute.backends import local as local_backend
    from harness.execute.runner import worker_slots

    monkeypatch.setattr(local_backend, "_gpu_count", lambda: 1)
    local = RunOptions(profile="paper", db_url=str(tmp_path / "db.sqlite"), gpus="all",
                       seeds=1, only="method=ba2m")
    jobs = plan("table2", local)
    assert jobs and all(j.config["train"]["gpus"] == 8 for j in jobs)
    with pytest.raises(UserError, match="the jobs need 8 GPUs each"):
        worker_slots(jobs, local)
    assert worker_slots(jobs, replace(local, backend="ray")) == []


def test_task_resources() -> None:
    cfg = {"train": {"epochs": 1, "pipeline": "device"}}
    assert task_resources(cfg, cluster_gpus=0) == {"num_cpus": 2, "num_gpus": 0}
    assert task_resources(cfg, cluster_gpus=4) == {"num_cpus": 1, "num_gpus": 1}
    assert task_resources({"train": {"pipeline": "loader"}}, 4) == {"num_cpus": 2, "num_gpus": 1}
    assert task_resources(cfg, cluster_gpus=4, jobs_per_gpu=2)["num_gpus"] == 0.5
    assert task_resources({"train": {"gpus": 2}}, 4) == {"num_cpus": 2, "num_gpus": 2}
    assert task_resources({"train": {"gpus": 2}}, 0)["num_gpus"] == 0


@pytest.mark.slow
def test_smoke_suite_completes_each_job_once(cluster: Any, tmp_path: Path) -> None:
    summary = run_suite("table7", _opts(tmp_path, sets=SMALL))
    assert summary["COMPLETED"] == 2 and not summary["failures"]
    with ResultsDB(str(tmp_path / "db.sqlite")) as db:
        jobs = db.jobs_frame("table7")
        assert (jobs["status"] == "COMPLETED").all() and (jobs["attempts"] == 1).all()
        res = db.results_frame("table7")
        assert res["best_top1_err"].between(0, 100).all() and len(res) == 2
        att = db.attempts_frame()
        assert len(att) == 2 and (att["exit_reason"] == "completed").all()
        # each job's task saw exactly one of the two logical GPUs, in a worker of its own
        # (that tasks holding GPUs at once never share one: test_gpu_slots_never_collide)
        assert all(_visible(note) in ("0", "1") for note in att["note"]), list(att["note"])
        assert att["worker"].nunique() == 2, list(att["worker"])
        before = db.content_hash()
    again = run_suite("table7", _opts(tmp_path, sets=SMALL))  # nothing to do: no task, no change
    assert again["COMPLETED"] == 2
    with ResultsDB(str(tmp_path / "db.sqlite")) as db:
        assert db.content_hash() == before


@ray.remote(num_cpus=0)
class _Ledger:
    """Which task holds which GPU now (tasks take before they work and give back after): a
    record of events, not of clock times."""

    def __init__(self) -> None:
        self.held: dict[int, str] = {}
        self.most = 0
        self.collisions: list[tuple[int, str, dict[int, str]]] = []

    def take(self, task: int, gpu: str) -> None:
        if gpu in self.held.values():
            self.collisions.append((task, gpu, dict(self.held)))
        self.held[task] = gpu
        self.most = max(self.most, len(self.held))

    def give(self, task: int) -> None:
        del self.held[task]

    def most_at_once(self) -> int:
        return self.most

    def report(self) -> tuple[int, list[tuple[int, str, dict[int, str]]]]:
        return self.most, self.collisions


def test_gpu_slots_never_collide(cluster: Any) -> None:
    """Four one-GPU tasks through the backend's own resource request, on 4 CPUs and 2 GPUs:
    each records in a ledger (a Ray actor) the GPU it holds while it holds it. No task ever
    took a GPU another task held, never more than two held one at once, and two did (the
    first waits, up to a minute, until a second task holds a GPU beside it: the collision
    check did see tasks side by side). Then a CPU task, which sees no GPU."""

    def _probe(num_gpus: float, ledger: Any = None, task: int = 0) -> dict[str, Any]:
        before = os.environ.get("CUDA_VISIBLE_DEVICES")  # (pickled by value)
        visible = pin_devices(num_gpus)
        if ledger is not None:
            ray.get(ledger.take.remote(task, visible))
            deadline = time.monotonic() + 60
            while ray.get(ledger.most_at_once.remote()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)  # still holding: a queued task may start on the other GPU
            ray.get(ledger.give.remote(task))
        return {"visible": visible, "before": before, "env": os.environ["CUDA_VISIBLE_DEVICES"]}

    probe = as_task(_probe)
    ledger = _Ledger.remote()
    gpu = task_resources({"train": {"pipeline": "device"}}, cluster_gpus=2)  # 1 CPU each:
    # the 4 CPUs would let all four run at once; only the 2 GPUs keep them two by two
    runs = ray.get([probe.options(**gpu).remote(gpu["num_gpus"], ledger, k) for k in range(4)])
    assert {r["visible"] for r in runs} == {"0", "1"}
    assert all(r["env"] == r["visible"] for r in runs)
    most, collisions = ray.get(ledger.report.remote())
    assert collisions == [] and most == 2, (most, collisions)
    # a CPU task sees no GPU, even in a worker that inherited a CUDA_VISIBLE_DEVICES
    cpu = task_resources({"train": {}}, cluster_gpus=0)
    inherited = {"env_vars": {"CUDA_VISIBLE_DEVICES": "1"}}
    res = ray.get(probe.options(**cpu, runtime_env=inherited).remote(cpu["num_gpus"]))
    assert res["before"] == "1" and res["visible"] == "" and res["env"] == ""


def _run_in_thread(opts: RunOptions) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["summary"] = run_suite("table7", opts)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _wait_running(db_path: Path, thread: threading.Thread, out: dict[str, Any]) -> Any:
    deadline = time.time() + 90
    while time.time() < deadline:
        assert thread.is_alive(), out
        if db_path.exists():
            with ResultsDB(str(db_path)) as db:
                jobs = db.jobs_frame()
            running = jobs[(jobs["status"] == "RUNNING") & jobs["worker"].notna()]
            if len(running):
                return running.iloc[0]
        time.sleep(0.1)
    raise AssertionError("no job started running")


@pytest.mark.slow
def test_killed_worker_is_retried_and_completes_once(cluster: Any, tmp_path: Path) -> None:
    opts = _opts(tmp_path, only="setting=between", sets=SMALL)
    thread, out = _run_in_thread(opts)
    job = _wait_running(tmp_path / "db.sqlite", thread, out)
    prefix, pid = job["worker"].rsplit(":", 1)
    assert prefix == machine_prefix()  # this machine's worker
    os.kill(int(pid), signal.SIGKILL)  # the Ray worker process running the task
    thread.join(timeout=120)
    assert not thread.is_alive() and "error" not in out, out
    assert out["summary"]["COMPLETED"] == 1 and not out["summary"]["failures"]
    with ResultsDB(str(tmp_path / "db.sqlite")) as db:
        jobs = db.jobs_frame()
        assert jobs["status"].tolist() == ["COMPLETED"] and jobs["attempts"].tolist() == [2]
        assert len(db.results_frame().dropna(subset=["best_top1_err"])) == 1
        att = db.attempts_frame()
        assert len(att) == 2 and att["ended_at"].notna().all()
        assert att["worker"].iloc[0] == job["worker"]
        assert att["exit_reason"].iloc[0].startswith("lost")
        assert att["exit_reason"].iloc[1] == "completed"


@pytest.mark.slow
def test_cancel_releases_the_job(cluster: Any, tmp_path: Path) -> None:
    """What Ctrl-C does: ray.cancel interrupts the task, which gives its job back."""
    from harness.store.db import JobSpec
    from harness.execute.backends.ray import _Driver

    opts = _opts(tmp_path, only="setting=between", epochs=2, sets=SMALL)
    jobs = plan("table7", opts)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with ResultsDB(url) as db:
        db.add_jobs([JobSpec(j.config_hash, j.group_hash, j.label, j.seed, j.config)
                     for j in jobs], suite="table7")
    driver = _Driver("table7", jobs, url, opts)
    for job in driver.todo:
        driver._submit(job)
    deadline = time.time() + 90
    while time.time() < deadline:
        with ResultsDB(url) as db:
            if (db.jobs_frame()["status"] == "RUNNING").any():
                break
        time.sleep(0.1)
    driver.cancel()
    with ResultsDB(url) as db:
        assert db.jobs_frame()["status"].tolist() == ["PENDING"]
        assert db.attempts_frame()["exit_reason"].tolist() == ["interrupted"]


@pytest.mark.slow
def test_task_reports_a_database_it_cannot_see(cluster: Any, tmp_path: Path) -> None:
    """A worker that opens another database than the run's (a SQLite path on another
    machine, an empty database) says so instead of running nothing silently."""
    task = as_task(run_job)
    opts = RunOptions(results_dir=str(tmp_path / "results"))
    absent = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    with ResultsDB(str(tmp_path / "empty.sqlite")):
        pass
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    outcomes = ray.get([task.options(num_cpus=1).remote(u, "0" * 16, opts, 0)
                        for u in (absent, empty)])
    assert [o[0] for o in outcomes] == ["missing", "missing"]
    assert not (tmp_path / "elsewhere.sqlite").exists()


@pytest.mark.slow
def test_two_drivers_on_one_ray_cluster_into_postgresql(cluster: Any, pg_url: str,
                                                        tmp_path: Path) -> None:
    """The scale issue's acceptance test: two `ba2m-bench run --backend ray` drivers started at
    once, on one Ray cluster, writing to one PostgreSQL database: every job completes exactly
    once (one attempt, one result row), and both drivers exit 0."""
    import subprocess
    import sys

    address = ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "harness", "run", "table7", "--profile", "smoke",
           "--backend", "ray", "--ray-address", address, "--no-progress", "--db", pg_url,
           "--results-dir", str(tmp_path / "results"),
           *(a for s in SMALL for a in ("--set", s))]
    drivers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [d.communicate(timeout=600)[0] for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], outputs
    with ResultsDB(pg_url) as db:
        jobs = db.jobs_frame("table7")
        assert len(jobs) == 2 and (jobs["status"] == "COMPLETED").all(), jobs
        att = db.attempts_frame()
        assert sorted(att["job_id"]) == sorted(jobs["job_id"]), att  # one attempt per job
        assert (att["exit_reason"] == "completed").all()
        assert len(db.results_frame("table7").dropna(subset=["best_top1_err"])) == 2
