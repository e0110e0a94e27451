"""One claimed job, start to finish: what a local worker process and a Ray task both run.

:func:`run_claimed` trains a job a worker has claimed, heartbeats while it trains, and records
how it ended (COMPLETED, FAILED with its reason, or released when interrupted). The execution
layer decides how many processes a job gets: one here, or ``train.gpus`` data-parallel ranks
(:func:`harness.training.ddp.train_data_parallel`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from harness.execute.options import RunOptions
from harness.plan.jobs import runtime_config
from harness.store.db import ClaimedJob, ResultsDB
from harness.store.status import JobStatus
from harness.store.workerid import is_dead_local

HEARTBEAT_S = float(os.environ.get("BA2M_HEARTBEAT_S", 10.0))
STALE_AFTER_S = max(120.0, 6 * HEARTBEAT_S)  # a RUNNING job silent this long is reclaimable


def run_claimed(db: ResultsDB, job: ClaimedJob, opts: RunOptions, parent: int | None) -> None:
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
    config = runtime_config(job.config, opts.data_root, opts.download, opts.compile,
                            opts.results_dir)
    try:
        checkpoint = checkpoint_for(job.config, opts.results_dir)
        if job.config.get("task") == "detection":
            from harness.training.detloop import train_detection

            result = train_detection(config, checkpoint, hooks)
        elif world_size(config) > 1:
            result = train_data_parallel(config, checkpoint, hooks)
        else:
            result = train(config, checkpoint, hooks)
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


def expire_dead_local_workers(db: ResultsDB, hashes: list[str]) -> None:
    """RUNNING jobs whose worker process on this host no longer exists are reclaimable now."""
    frame = db.jobs_frame()
    if frame.empty:
        return
    mine = set(hashes)
    dead = [
        h for h, status, worker in zip(frame["config_hash"], frame["status"], frame["worker"])
        if status == JobStatus.RUNNING and h in mine and is_dead_local(worker)
    ]
    if dead:
        db.expire(dead)


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
