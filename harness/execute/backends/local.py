"""The local backend: one worker process per GPU slot (or one on the CPU), supervised.

Workers claim jobs atomically from the database, so re-running the same command after Ctrl-C,
a kill or a crash resumes each unfinished job from its checkpoint and never runs one twice.
A worker killed mid-run (kill -9, the OOM killer) is replaced while jobs of the run remain.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from harness.errors import RunFailure, UserError, database_failure
from harness.execute.options import RunOptions
from harness.execute.progress import watch
from harness.execute.worker import (STALE_AFTER_S, attempt_info, expire_dead_local_workers,
                                    run_claimed)
from harness.plan.jobs import Job
from harness.store.db import ResultsDB
from harness.store.status import JobStatus
from harness.store.workerid import worker_name
from models.plugins import import_plugins

WAIT_S = 2.0  # a worker with nothing to claim re-checks this often while others still run
MAX_RESPAWNS = 3  # per slot, for workers that die (killed, out of memory) mid-run
DB_FAILED = 3  # a worker's exit code when the results database could not be written


def slots(gpus: str, jobs_per_gpu: int, gpus_per_job: int = 1) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each worker; [None] means one CPU worker.

    With ``gpus_per_job`` W > 1 (data-parallel jobs, ``harness.training.ddp``) each worker
    gets W GPUs: "0,1", "2,3", ... (GPUs left over beyond a multiple of W stay idle), and runs
    its job's W processes on them; ``jobs_per_gpu`` workers share each group. One run has one W
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


def job_gpus(jobs: Sequence[Job]) -> int:
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


def run_local(suite: str, jobs: Sequence[Job], url: str, opts: RunOptions,
              worker_slots: list[str | None]) -> None:
    """Run every unfinished job of ``jobs`` (already in the database at ``url``) on
    ``worker_slots``, with the live display unless ``opts.progress`` is false."""
    hashes = [j.config_hash for j in jobs]
    procs = _start_workers(worker_slots, url, hashes, opts)
    try:
        if opts.progress:
            watch(url, suite, hashes, procs)
        _supervise(procs, worker_slots, url, hashes, opts)
    except KeyboardInterrupt:
        for p in procs:  # the workers got the same Ctrl-C; give them time to release jobs
            p.join(timeout=30)
        raise


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
                counts = db.status_counts(hashes=hashes)
                left = counts[JobStatus.PENDING] + counts[JobStatus.RUNNING]
                expire_dead_local_workers(db, hashes)
            # killed by a signal (kill -9, the OOM killer); an interrupted worker exits 130
            crashed = [i for i, p in enumerate(procs) if p.exitcode is not None and p.exitcode < 0]
            retry = [i for i in crashed if respawns[i] < MAX_RESPAWNS]
            if not left or not retry:
                return
            for i in retry:
                respawns[i] += 1
                procs[i] = _start_workers([worker_slots[i]], url, hashes, opts)[0]


def _start_workers(worker_slots: list[str | None], url: str, hashes: list[str],
                   opts: RunOptions) -> list[multiprocessing.process.BaseProcess]:
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for slot in worker_slots:
        p = ctx.Process(target=worker_main, args=(slot, url, hashes, opts, os.getpid()),
                        daemon=False)
        p.start()
        procs.append(p)
    return procs


def worker_main(slot: str | None, url: str, hashes: list[str], opts: RunOptions,
                runner: int | None = None) -> None:
    """A worker process: claim, train, store, until no job of this run is left to claim, or
    until its runner (pid ``runner``, the parent that started it) is gone."""
    if slot is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot
    else:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    import_plugins(opts.plugins)  # as the runner did (each job's config names its own too)
    try:
        _work(url, hashes, opts, runner)
    except DBAPIError as exc:  # the job it held stays RUNNING and is reclaimed by the next run
        print(f"error: worker {worker_name()}: {database_failure(exc)}", file=sys.stderr)
        raise SystemExit(DB_FAILED) from None


def _work(url: str, hashes: list[str], opts: RunOptions, runner: int | None = None) -> None:
    # The runner's pid as the runner gave it: a runner killed while this worker was starting
    # up (importing) has already left it to init, whose pid os.getppid() would give here; the
    # orphan would then never notice and run every remaining job on its own.
    parent = os.getppid() if runner is None else runner
    with ResultsDB(url) as db:
        while os.getppid() == parent:  # an orphan claims nothing more
            claimed = db.claim(hashes, worker_name(), STALE_AFTER_S,
                               attempt_info=attempt_info())
            if claimed is not None:
                run_claimed(db, claimed, opts, parent)
                continue
            # Nothing to claim: wait while another worker (perhaps an orphan of a killed
            # runner) still holds a job of this run, so that this command ends only when every
            # job has finished or been released and taken over.
            expire_dead_local_workers(db, hashes)
            if not db.status_counts(hashes=hashes)[JobStatus.RUNNING] or os.getppid() != parent:
                return
            time.sleep(WAIT_S)
