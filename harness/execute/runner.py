"""The runner: expand a suite into jobs, insert them, then run every unfinished one on a
backend (local worker processes, or Ray tasks), and sum up this run's jobs.

Re-running the same command after Ctrl-C, a kill or a crash resumes each unfinished job from
its checkpoint and never runs one twice (workers claim jobs atomically from the database).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import suites
from harness.errors import UserError
from harness.execute.backends.local import job_gpus, run_local, slots
from harness.execute.dependencies import check_pretrained
from harness.execute.options import RunOptions
from harness.execute.worker import STALE_AFTER_S, expire_dead_local_workers
from harness.plan.jobs import Job, expand, not_comparable_reason, profile, runtime_config
from harness.plan.plugins import check_plugins, load_plugins, with_added
from harness.store.db import JobSpec, ResultsDB
from harness.store.status import JobStatus
from harness.store.workerid import worker_name

BACKENDS = ("local", "ray")


def plan(name: str, opts: RunOptions) -> list[Job]:
    """The suite's jobs under the options (raises :class:`UserError` on bad input); what
    ``run --dry-run`` shows. ``--plugin`` modules are imported first, ``--add-method`` rows
    added, and every plugin backbone and method a job builds is checked before anything is
    stored."""
    load_plugins(opts.plugins)
    try:
        suite = suites.get(name)
    except (suites.UnknownSuiteError, suites.SuitePluginError) as exc:
        raise UserError(str(exc)) from None
    suite = with_added(suite, opts.add_methods)
    jobs = expand(suite, profile(opts.profile), opts.overrides(),
                  count_classes=lambda data: count_classes(data, opts))
    check_plugins(j.config.get("model") or {} for j in jobs if j.unavailable is None)
    return jobs


def count_classes(data: dict[str, Any], opts: RunOptions) -> int:
    """The class count of the data a job's data config names, opened from ``--data-root``
    (how an image folder's jobs learn their classes before they are planned)."""
    from harness.training.data import DataError
    from harness.training.job import data_classes

    try:
        return data_classes(data, opts.data_root, opts.download)
    except (DataError, ValueError) as exc:
        raise UserError(str(exc).splitlines()[0]) from None


def check_data(jobs: list[Job], opts: RunOptions) -> None:
    """Open the data once in the driver, so a missing dataset fails before anything runs (a
    detection job's shapes set is written here, once for every worker)."""
    from harness.training.data import DataError
    from harness.training.detjob import open_detection_data
    from harness.training.job import open_job_data

    runnable = [j for j in jobs if j.unavailable is None]
    if not runnable:
        return
    config = runtime_config(runnable[0].config, opts.data_root, opts.download)
    detection = config.get("task") == "detection"
    try:
        data = open_detection_data(config) if detection else open_job_data(config)
    except (DataError, ValueError) as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    images = len(data.train) if detection else data.train_len  # type: ignore[union-attr]
    biggest = max(j.config["train"]["batch_size"] for j in runnable)
    if biggest > images:
        raise UserError(f"batch size {biggest} exceeds the {images} training images of "
                        f"{config['data']['provider']}; choose a smaller --batch-size")


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


def worker_slots(jobs: list[Job], opts: RunOptions) -> list[str | None]:
    """This machine's worker slots for the local backend (a UserError when the jobs need more
    GPUs than ``--gpus`` gives); none for Ray, which places each task on the cluster's GPUs."""
    if opts.backend != "local":
        return []
    return slots(opts.gpus, opts.jobs_per_gpu, job_gpus(jobs))


def run_suite(name: str, opts: RunOptions) -> dict[str, Any]:
    """Insert the suite's jobs and run every one not COMPLETED; returns this run's status
    counts, its failures and why any of its jobs are not comparable with the paper."""
    check_backend(opts)
    jobs = plan(name, opts)
    slots_here = worker_slots(jobs, opts)
    check_pretrained(jobs, opts)
    check_data(jobs, opts)
    check_results_dir(opts.results_dir)
    # Workers (and Ray tasks, and data-parallel ranks) inherit this: OpenMP threads that
    # sleep instead of spinning when idle. Training on the CPU alone is ~15 % slower, but
    # processes sharing the cores (two runners, several tasks) no longer slow each other down
    # a hundredfold (measured: a 3 s epoch took 266 s beside a second runner). Set
    # OMP_WAIT_POLICY yourself to choose otherwise.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    hashes = [j.config_hash for j in jobs]
    with ResultsDB(opts.db_url) as db:
        db.add_jobs([JobSpec(j.config_hash, j.group_hash, j.label, j.seed, j.config)
                     for j in jobs], suite=name)
        expire_dead_local_workers(db, hashes)
        if opts.retry_failed:  # once, here: a job failing again in this run stays FAILED
            db.requeue(hashes, statuses=(JobStatus.FAILED,))
        _fail_unavailable(db, jobs)
        url = db.engine.url.render_as_string(hide_password=False)
    if opts.backend == "ray":
        from harness.execute.backends.ray import run_on_ray

        run_on_ray(name, jobs, url, opts)
    else:
        run_local(name, jobs, url, opts, slots_here)
    return summary(url, name, jobs)


def summary(url: str, name: str, jobs: list[Job]) -> dict[str, Any]:
    """Status counts of these jobs (not of other runs of the suite), their failures, and why
    any are not comparable."""
    reasons = sorted({not_comparable_reason(j.config) for j in jobs
                      if j.unavailable is None and not j.config.get("comparable")})
    hashes = {j.config_hash for j in jobs}
    with ResultsDB(url, read_only=True) as db:
        failures = [f for f in db.failures(name) if f["config_hash"] in hashes]
        return db.status_counts(hashes=hashes) | {"failures": failures,
                                                  "not_comparable": reasons}


def _fail_unavailable(db: ResultsDB, jobs: list[Job]) -> None:
    """Rows the zoo cannot build yet end FAILED with a 'not yet available' reason at once."""
    for job in jobs:
        if job.unavailable is None:
            continue
        claimed = db.claim([job.config_hash], worker_name(), STALE_AFTER_S)
        if claimed is not None:
            db.fail(claimed.job_id, claimed.attempt_id, job.unavailable)
