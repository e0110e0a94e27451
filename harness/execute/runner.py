"""The runner: insert a suite's jobs, then run every unfinished one on the GPU slots there are
(or the CPU), one worker process per slot, with a live progress display.

Workers claim jobs atomically from the database, so re-running the same command after Ctrl-C,
a kill or a crash resumes each unfinished job from its checkpoint and never runs one twice.
A job whose heartbeat has gone stale (its worker died) is reclaimed.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

import suites
from harness.store.db import ClaimedJob, JobSpec, ResultsDB
from harness.errors import RunFailure, UserError, database_failure
from harness.plan.jobs import Job, Overrides, expand, not_comparable_reason, profile, runtime_config
from harness.execute.progress import watch
from harness.store.workerid import is_dead_local, worker_name

HEARTBEAT_S = float(os.environ.get("BA2M_HEARTBEAT_S", 10.0))
STALE_AFTER_S = max(120.0, 6 * HEARTBEAT_S)
WAIT_S = 2.0  # a worker with nothing to claim re-checks this often while others still run
MAX_RESPAWNS = 3  # per slot, for workers that die (killed, out of memory) mid-run
DB_FAILED = 3  # a worker's exit code when the results database could not be written


@dataclass(frozen=True)
class RunOptions:
    """Everything ``ba2m-bench run`` takes besides the suite name."""

    profile: str = "smoke"
    db_url: str | None = None
    results_dir: str = "results"
    gpus: str = "none"  # "none", "all" or "0,1,..."
    jobs_per_gpu: int = 1
    seeds: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    only: str | None = None
    dataset: str | None = None
    retry_failed: bool = False
    data_root: str | None = None
    download: bool = False
    dry_run: bool = False
    progress: bool = True
    compile: bool = False
    sets: tuple[str, ...] = ()  # --set [FILTER:]KEY=VALUE overrides of the jobs' configs
    backend: str = "local"  # "local" (a worker process per slot) or "ray"
    ray_address: str | None = None  # --ray-address: "auto", HOST:PORT, or None for a local Ray
    gpus_per_job: int | None = None  # --gpus-per-job: data-parallel processes of every job


def plan(name: str, opts: RunOptions) -> list[Job]:
    """The suite's jobs under the options (raises :class:`UserError` on bad input)."""
    try:
        suite = suites.get(name)
    except suites.UnknownSuiteError as exc:
        raise UserError(str(exc)) from None
    over = Overrides(opts.seeds, opts.epochs, opts.only, opts.dataset, opts.batch_size, opts.sets,
                     opts.gpus_per_job)
    return expand(suite, profile(opts.profile), over)


def slots(gpus: str, jobs_per_gpu: int, gpus_per_job: int = 1) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each worker; [None] means one CPU worker.

    With ``gpus_per_job`` W > 1 (data-parallel jobs, ``harness.training.ddp``) each worker gets
    W GPUs: "0,1", "2,3", ... (GPUs left over beyond a multiple of W stay idle), and runs its
    job's W processes on them; ``jobs_per_gpu`` workers share each group. One run has one W
    (the largest any job asks for: a job asking fewer uses the first GPUs of its group). On the
    CPU the one worker runs a W-process job as W gloo processes."""
    if jobs_per_gpu < 1:
        raise UserError(f"--jobs-per-gpu must be a positive integer, got {jobs_per_gpu}")
    if gpus == "none":
        return [None]
    available = _gpu_count()
    if gpus == "all":
        ids = list(range(available))
        if not ids:
            return [None]
    else:
        try:
            ids = [int(g) for g in gpus.split(",")]
        except ValueError:
            raise UserError(f"--gpus {gpus!r} is not none, all or a list like 0,1") from None
        missing = [g for g in ids if not 0 <= g < available]
        if missing:
            raise UserError(
                f"--gpus names GPU {missing[0]} but this machine has {available} GPU(s); "
                "use --gpus all, --gpus none or ids below that count"
            )
    if gpus_per_job > 1:
        return [slot for slot in _gpu_groups(ids, gpus_per_job) for _ in range(jobs_per_gpu)]
    return [str(g) for g in ids for _ in range(jobs_per_gpu)]


def _gpu_groups(ids: list[int], size: int) -> list[str]:
    """``ids`` in consecutive groups of ``size`` ("0,1", "2,3"); a UserError if none fits."""
    if len(ids) < size:
        raise UserError(
            f"the jobs need {size} GPUs each (the recipe or --gpus-per-job) but --gpus gives "
            f"{len(ids)}; run with --gpus-per-job {len(ids)} (each GPU then takes a larger "
            "share of the batch) or --gpus none (data-parallel processes on the CPU)")
    return [",".join(str(g) for g in ids[i:i + size])
            for i in range(0, len(ids) - size + 1, size)]


def job_gpus(jobs: list[Job]) -> int:
    """The most data-parallel processes a runnable job asks for (``train.gpus``; 1 if none)."""
    return max((int(j.config["train"].get("gpus", 1)) for j in jobs
                if j.unavailable is None and "train" in j.config), default=1)


def _gpu_count() -> int:
    """GPUs visible, asked in a subprocess so that the driver never initialises CUDA."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def check_data(jobs: list[Job], opts: RunOptions) -> None:
    """Open the data once in the driver, so a missing dataset fails before anything runs."""
    from harness.training.data import DataError
    from harness.training.loop import open_job_data

    runnable = [j for j in jobs if j.unavailable is None]
    if not runnable:
        return
    config = runtime_config(runnable[0].config, opts.data_root, opts.download)
    try:
        data = open_job_data(config)
    except (DataError, ValueError) as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    biggest = max(j.config["train"]["batch_size"] for j in runnable)
    if biggest > data.train_len:
        raise UserError(f"batch size {biggest} exceeds the {data.train_len} training images of "
                        f"{data.name}; choose a smaller --batch-size")


BACKENDS = ("local", "ray")


def check_backend(opts: RunOptions) -> None:
    """A known backend, and Ray importable when it is asked for."""
    if opts.backend not in BACKENDS:
        raise UserError(f"unknown backend {opts.backend!r}; choose one of {', '.join(BACKENDS)}")
    if opts.backend == "local" and opts.ray_address:
        raise UserError("--ray-address needs --backend ray")
    if opts.backend == "ray":
        if importlib.util.find_spec("ray") is None:
            raise UserError("--backend ray needs Ray, which is not installed; install it with "
                            "pip install -e '.[ray]'")


def check_results_dir(results_dir: str) -> None:
    """Fail before anything is stored if checkpoints cannot be written under ``results_dir``."""
    folder = Path(results_dir) / "checkpoints"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write checkpoints under {folder} ({exc.strerror or exc}); "
                        "choose another --results-dir or fix that folder") from None


def run_suite(name: str, opts: RunOptions) -> dict[str, Any]:
    """Insert the suite's jobs and run every one not COMPLETED; returns status counts."""
    check_backend(opts)
    jobs = plan(name, opts)
    # this machine's worker slots; Ray places each task on the cluster's GPUs itself
    worker_slots = slots(opts.gpus, opts.jobs_per_gpu, job_gpus(jobs)) \
        if opts.backend == "local" else []
    if opts.dry_run:
        return {"jobs": len(jobs), "runnable": sum(j.unavailable is None for j in jobs),
                "slots": len(worker_slots), "dry_run": True}
    check_data(jobs, opts)
    check_results_dir(opts.results_dir)
    # Workers (and Ray tasks, and data-parallel ranks) inherit this: OpenMP threads that
    # sleep instead of spinning when idle. Training on the CPU alone is ~15 % slower, but
    # processes sharing the cores (two runners, several tasks) no longer slow each other down
    # a hundredfold (measured: a 3 s epoch took 266 s beside a second runner). Set
    # OMP_WAIT_POLICY yourself to choose otherwise.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with ResultsDB(opts.db_url) as db:
        db.add_jobs([JobSpec(j.config_hash, j.group_hash, j.label, j.seed, j.config)
                     for j in jobs], suite=name)
        hashes = [j.config_hash for j in jobs]
        _expire_dead_local_workers(db, hashes)
        if opts.retry_failed:  # once, here: a job failing again in this run stays FAILED
            db.requeue(hashes, statuses=("FAILED",))
        _fail_unavailable(db, jobs)
        url = db.engine.url.render_as_string(hide_password=False)
    if opts.backend == "ray":
        from harness.execute.backends.ray import run_on_ray

        run_on_ray(name, jobs, url, opts)
        return _summary(url, name, jobs)
    procs = _start_workers(worker_slots, url, hashes, opts)
    try:
        if opts.progress:
            watch(url, name, hashes, procs)
        _supervise(procs, worker_slots, url, hashes, opts)
    except KeyboardInterrupt:
        for p in procs:  # the workers got the same Ctrl-C; give them time to release jobs
            p.join(timeout=30)
        raise
    return _summary(url, name, jobs)


def _summary(url: str, name: str, jobs: list[Job]) -> dict[str, Any]:
    """Status counts of the suite's jobs, their failures, and why any are not comparable."""
    reasons = sorted({not_comparable_reason(j.config) for j in jobs
                      if j.unavailable is None and not j.config.get("comparable")})
    with ResultsDB(url) as db:
        return db.status_counts(name) | {"failures": db.failures(name), "not_comparable": reasons}


def _supervise(procs: list[multiprocessing.process.BaseProcess], worker_slots: list[str | None],
               url: str, hashes: list[str], opts: RunOptions) -> None:
    """Wait for the workers; replace one that died abnormally (killed, out of memory) while
    jobs of this run remain, after making its job reclaimable."""
    respawns = [0] * len(procs)
    while True:
        for p in procs:
            p.join(timeout=1.0)
        if all(not p.is_alive() for p in procs):
            if any(p.exitcode == DB_FAILED for p in procs):
                raise RunFailure("a worker could not write the results database (its message is "
                                 "above); nothing it held was marked completed; fix the cause, "
                                 "then re-run the same command to resume")
            with ResultsDB(url) as db:
                left = _unfinished(db, hashes)
                _expire_dead_local_workers(db, hashes)
            # killed by a signal (kill -9, the OOM killer); an interrupted worker exits 130
            crashed = [i for i, p in enumerate(procs) if p.exitcode is not None and p.exitcode < 0]
            retry = [i for i in crashed if respawns[i] < MAX_RESPAWNS]
            if not left or not retry:
                return
            for i in retry:
                respawns[i] += 1
                procs[i] = _start_workers([worker_slots[i]], url, hashes, opts)[0]


def _running(db: ResultsDB, hashes: list[str]) -> int:
    frame = db.jobs_frame()
    return int((frame["config_hash"].isin(set(hashes)) & (frame["status"] == "RUNNING")).sum())


def _unfinished(db: ResultsDB, hashes: list[str]) -> int:
    frame = db.jobs_frame()
    mine = frame[frame["config_hash"].isin(set(hashes))]
    return int(mine["status"].isin(["PENDING", "RUNNING"]).sum())


def _fail_unavailable(db: ResultsDB, jobs: list[Job]) -> None:
    """Rows the zoo cannot build yet end FAILED with a 'not yet available' reason at once."""
    for job in jobs:
        if job.unavailable is None:
            continue
        claimed = db.claim([job.config_hash], worker_name(), STALE_AFTER_S)
        if claimed is not None:
            db.fail(claimed.job_id, claimed.attempt_id, job.unavailable)


def _expire_dead_local_workers(db: ResultsDB, hashes: list[str]) -> None:
    """RUNNING jobs whose worker process on this host no longer exists are reclaimable now."""
    frame = db.jobs_frame()
    if frame.empty:
        return
    dead = [
        h for h, status, worker in zip(frame["config_hash"], frame["status"], frame["worker"])
        if status == "RUNNING" and h in set(hashes) and is_dead_local(worker)
    ]
    if dead:
        db.expire(dead)


def _start_workers(worker_slots: list[str | None], url: str, hashes: list[str],
                   opts: RunOptions) -> list[multiprocessing.process.BaseProcess]:
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for slot in worker_slots:
        p = ctx.Process(target=worker_main, args=(slot, url, hashes, asdict(opts)), daemon=False)
        p.start()
        procs.append(p)
    return procs


def worker_main(slot: str | None, url: str, hashes: list[str], opts: dict[str, Any]) -> None:
    """A worker process: claim, train, store, until no job of this run is left to claim."""
    if slot is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot
    else:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _work(url, hashes, opts)
    except DBAPIError as exc:  # the job it held stays RUNNING and is reclaimed by the next run
        print(f"error: worker {worker_name()}: {database_failure(exc)}", file=sys.stderr)
        raise SystemExit(DB_FAILED) from None


def _work(url: str, hashes: list[str], opts: dict[str, Any]) -> None:
    parent = os.getppid()
    with ResultsDB(url) as db:
        while True:
            claimed = db.claim(hashes, worker_name(), STALE_AFTER_S,
                               attempt_info=attempt_info())
            if claimed is not None:
                run_claimed(db, claimed, opts, parent)
                continue
            # Nothing to claim: wait while another worker (perhaps an orphan of a killed
            # runner) still holds a job of this run, so that this command ends only when every
            # job has finished or been released and taken over.
            _expire_dead_local_workers(db, hashes)
            if not _running(db, hashes) or os.getppid() != parent:
                return
            time.sleep(WAIT_S)


def run_claimed(db: ResultsDB, job: ClaimedJob, opts: dict[str, Any],
                parent: int | None) -> None:
    """Train one claimed job and record how it ended. ``parent`` is the pid of the runner the
    worker must not outlive, or None where something else supervises the worker (Ray)."""
    from harness.plan.spec import NotAvailableError
    from harness.training.checkpoints import checkpoint_for
    from harness.training.ddp import train_data_parallel, world_size
    from harness.training.loop import Diverged, Hooks, Stopped, train

    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(db, job, stop, parent), daemon=True)
    beat.start()
    hooks = Hooks(
        on_epoch=lambda e, m: db.record_epoch(job.job_id, e, **m),
        on_eval=lambda key, t1, t5: db.record_eval(job.job_id, key, t1, t5),
        on_resume=lambda e, note: db.set_attempt(job.attempt_id, resumed_from_epoch=e, note=note),
        should_stop=stop.is_set,
    )
    config = runtime_config(job.config, opts["data_root"], opts["download"], opts["compile"])
    try:
        checkpoint = checkpoint_for(job.config, opts["results_dir"])
        result = (train_data_parallel(config, checkpoint, hooks) if world_size(config) > 1
                  else train(config, checkpoint, hooks))
        db.complete(job.job_id, job.attempt_id, result)
    except Diverged as exc:
        db.fail(job.job_id, job.attempt_id, str(exc))
    except (KeyboardInterrupt, Stopped):
        db.release(job.job_id, job.attempt_id, "interrupted")
        raise SystemExit(130) from None
    except NotAvailableError as exc:
        db.fail(job.job_id, job.attempt_id, str(exc))
    except DBAPIError:
        raise  # the database itself failed: nothing can be recorded; the worker stops
    except Exception as exc:  # noqa: BLE001 - recorded with its traceback; the suite goes on
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        db.fail(job.job_id, job.attempt_id, reason, traceback.format_exc())
    finally:
        stop.set()


def _heartbeat(db: ResultsDB, job: ClaimedJob, stop: threading.Event,
               parent: int | None) -> None:
    """Beat every HEARTBEAT_S; ask training to stop if the job was taken away or the driver
    died (a worker never outlives its runner by more than one heartbeat). With ``parent``
    None there is no orphan check (Ray ends a driver's tasks when the driver goes)."""
    while not stop.wait(HEARTBEAT_S):
        try:
            owner = db.heartbeat(job.job_id, job.attempt_id)
        except DBAPIError:  # locked or briefly unwritable: training goes on, the next beat retries
            owner = True
        if not owner or (parent is not None and os.getppid() != parent):
            stop.set()


def attempt_info() -> dict[str, Any]:
    """Provenance of an attempt: host, GPU, torch/CUDA versions, git commit and dirty flag."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    commit, dirty = _git_state()
    return {"host": socket.gethostname(), "gpu_name": gpu, "torch_version": torch.__version__,
            "cuda_version": torch.version.cuda or "none", "git_commit": commit,
            "git_dirty": dirty}


def _git_state() -> tuple[str, bool]:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown", False
    return commit or "unknown", bool(dirty)
