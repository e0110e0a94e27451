"""The Ray backend: ``ba2m-bench run SUITE --backend ray [--ray-address auto|HOST:PORT]``.

Each unfinished job becomes one Ray task that asks for its GPUs (``config["train"]["gpus"]``,
default 1; none on a cluster without GPUs) and a CPU or two; Ray places and queues them. The
task opens the run's database itself, claims its job exactly as a local worker does and trains
it with :func:`harness.execute.worker.run_claimed`, so results land in the same tables through
the same owner-checked writes, never in Ray's own state.

What is retried: a task whose worker process or node is lost (killed, out of memory, node
gone) is run again by Ray, up to ``MAX_RETRIES`` times; the new try finds the job RUNNING under
the dead worker, expires it and resumes from the checkpoint. What is not: an exception in
training is recorded as FAILED by ``run_claimed`` and the task returns normally
(``retry_exceptions=False``); ``--retry-failed`` on a later run is the way to try again.

Ray is imported only inside functions: without the ``ray`` extra this module still imports.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import RunFailure, UserError
from harness.execute.options import RunOptions
from harness.store.status import FINISHED, UNFINISHED, JobStatus

if TYPE_CHECKING:
    from harness.plan.jobs import Job

MAX_RETRIES = 3  # tries Ray adds for a task whose worker or node was lost
OBJECT_STORE_BYTES = 128 * 1024**2  # a local Ray's object store: tasks pass only small values
CANCEL_WAIT_S = 30.0  # after Ctrl-C, how long cancelled tasks get to release their jobs
POLL_S = 1.0


# ------------------------------------------------------------------------------- resources
def task_resources(config: dict[str, Any], cluster_gpus: float,
                   jobs_per_gpu: int = 1) -> dict[str, float]:
    """Ray resources of one job: ``num_gpus`` from ``config["train"].get("gpus", 1)`` (0 on a
    cluster without GPUs; ``1/jobs_per_gpu`` for a one-GPU job when several share a card)
    and ``num_cpus``: 1 for a one-GPU job whose images stay on the GPU (the on-device
    pipeline), else 2 (a DataLoader's host-side augmentation, or a CPU-only job's threads)."""
    train = config.get("train") or {}
    wanted = int(train.get("gpus", 1))
    if cluster_gpus <= 0 or wanted <= 0:
        return {"num_cpus": 2, "num_gpus": 0}
    if wanted == 1:
        cpus = 1 if train.get("pipeline") == "device" else 2
        return {"num_cpus": cpus, "num_gpus": 1 / max(1, jobs_per_gpu)}
    return {"num_cpus": 2, "num_gpus": wanted}


def pin_devices(num_gpus: float) -> str:
    """Make this task's process see exactly the GPUs Ray assigned it (none for a CPU task,
    where Ray leaves CUDA_VISIBLE_DEVICES alone); returns the CUDA_VISIBLE_DEVICES set.
    Must run before CUDA is initialised in the process: tasks run in a fresh worker each."""
    import ray

    ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", []) if num_gpus else []
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised in this Ray worker before its task pinned its "
                           "GPUs; tasks must run in a fresh worker (max_calls=1)")
    visible = ",".join(str(i) for i in ids)
    os.environ["CUDA_VISIBLE_DEVICES"] = visible
    return visible


def plugin_env(config: dict[str, Any]) -> dict[str, str]:
    """Environment of a task whose job builds plugins (``model.plugins``): the folders this
    process imported them from first on PYTHONPATH (a plugin that is not installed), and
    BA2M_PLUGINS. Empty for a job of built-in parts. The task imports each plugin from its
    job's config whatever this says."""
    from models.catalogue import PLUGINS_ENV
    from models.plugins import import_root

    records = (config.get("model") or {}).get("plugins") or []
    folders = [f for f in (import_root(r["module"]) for r in records) if f]
    if not records:
        return {}
    path = os.pathsep.join(dict.fromkeys(
        [*folders, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]))
    return {"PYTHONPATH": path, PLUGINS_ENV: os.environ.get(PLUGINS_ENV, "")}


# ------------------------------------------------------------------------------ the task
def as_task(fn: Any) -> Any:
    """``fn`` as a Ray remote function with the backend's task settings: a fresh worker
    process per task (``max_calls=1``: no CUDA state or GPU mask carried from an earlier
    task), retried up to MAX_RETRIES times when its worker or node is lost, never when it
    raises (``retry_exceptions=False``)."""
    import ray

    return ray.remote(max_calls=1, max_retries=MAX_RETRIES, retry_exceptions=False)(fn)


def run_job(url: str, config_hash: str, opts: RunOptions,
            num_gpus: float) -> tuple[str, str]:
    """The body of one Ray task: claim the job and train it. Returns (outcome, detail):
    a final status (COMPLETED, FAILED, CANCELLED), ``interrupted`` (released), ``held`` (a
    live worker elsewhere holds it), ``missing`` (not in the database this worker opened) or
    ``database`` (the database could not be written; detail says why)."""
    visible = pin_devices(num_gpus)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from harness.errors import database_failure
    from harness.execute.worker import STALE_AFTER_S, attempt_info, run_claimed
    from harness.store.db import ResultsDB
    from harness.store.workerid import is_dead_local, worker_name
    from models.plugins import import_plugins

    import_plugins(opts.plugins)  # as the driver did (each job's config names its own too)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and \
            not Path(parsed.database).is_file():  # not on this machine: create no stray file
        return "missing", parsed.render_as_string(hide_password=True)
    try:
        with ResultsDB(url) as db:
            if db.job(config_hash) is None:
                return "missing", db.url
            worker = worker_name()
            info = attempt_info() | {"note": f"ray task, CUDA_VISIBLE_DEVICES={visible}"}
            for _ in range(2):
                claimed = None
                try:
                    claimed = db.claim([config_hash], worker, STALE_AFTER_S, attempt_info=info)
                    if claimed is not None:
                        run_claimed(db, claimed, opts, None)
                        return db.job(config_hash)["status"], ""
                except SystemExit:  # interrupted (ray.cancel, Ctrl-C): run_claimed released it
                    return "interrupted", ""
                except KeyboardInterrupt:  # interrupted before run_claimed could catch it
                    if claimed is not None:
                        db.release(claimed.job_id, claimed.attempt_id, "interrupted")
                    return "interrupted", ""
                row = db.job(config_hash)
                if row is None:
                    return "missing", db.url
                if row["status"] != JobStatus.RUNNING:
                    return row["status"], ""
                if not is_dead_local(row["worker"]):
                    return "held", str(row["worker"])
                # held by a worker of this host that is gone (an earlier try of this task,
                # killed): its job is reclaimable now, not after the heartbeat goes stale
                db.expire([config_hash])
            return "held", ""
    except DBAPIError as exc:
        return "database", database_failure(exc)


# ----------------------------------------------------------------------------- the driver
def run_on_ray(suite: str, jobs: list[Job], url: str, opts: RunOptions) -> None:
    """Run every unfinished job of ``jobs`` (already in the database at ``url``) as Ray
    tasks, with the same progress display as the local backend; Ctrl-C cancels the tasks,
    which release their jobs. Connects to ``opts.ray_address`` or starts a local Ray, and
    shuts Ray down only if it connected here (a driver already connected is left as is)."""
    import ray

    connected = _connect(opts)
    try:
        _Driver(suite, jobs, url, opts).run()
    finally:
        if connected:
            ray.shutdown()


def _connect(opts: RunOptions) -> bool:
    """Connect (or start a local Ray); False when this process was connected already."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    address = opts.ray_address or os.environ.get("RAY_ADDRESS")  # Ray's own variable
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"cannot connect to the Ray cluster at {address!r} "
                            f"({first}); start one with `ray start --head`, or leave out "
                            "--ray-address for a local Ray") from None
        return True
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private, short-lived Ray
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
             object_store_memory=OBJECT_STORE_BYTES, **quiet)
    return True


class _Driver:
    """Submits the tasks, collects their outcomes, resubmits jobs another worker held."""

    def __init__(self, suite: str, jobs: list[Job], url: str, opts: RunOptions) -> None:
        import ray

        from harness.store.db import ResultsDB

        self.suite, self.url, self.opts = suite, url, opts
        self.hashes = [j.config_hash for j in jobs]
        with ResultsDB(url) as db:
            frame = db.jobs_frame()
        status = dict(zip(frame["config_hash"], frame["status"]))
        # PENDING, and RUNNING (a dead worker's, or another run's: the task sorts it out);
        # FAILED only if --retry-failed, which run_suite has requeued to PENDING already
        self.todo = [j for j in jobs if j.unavailable is None
                     and status.get(j.config_hash) in UNFINISHED]
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        biggest = max((n["Resources"].get("GPU", 0) for n in nodes), default=0)
        for job in self.todo:
            need = task_resources(job.config, self.cluster_gpus, opts.jobs_per_gpu)["num_gpus"]
            if need > biggest:
                raise UserError(f"{job.label} asks for {need:g} GPUs but no Ray node has more "
                                f"than {biggest:g}; lower its train.gpus or add a bigger node")
        if len(nodes) > 1 and url.startswith("sqlite"):
            print("warning: the results database is a SQLite file, which Ray workers on other "
                  "machines cannot share; use PostgreSQL (--db postgresql+psycopg://...; see "
                  "docs/ray.md)", file=sys.stderr)
        self.task_opts = opts.for_workers()
        self.remote = as_task(run_job)
        self.refs: dict[Any, Job] = {}
        self.held: dict[str, Job] = {}
        self.problems: list[str] = []
        self.db_failure: str | None = None

    # -------------------------------------------------------------------------- running
    def run(self) -> None:
        from harness.execute.progress import watch

        try:
            for job in self.todo:
                self._submit(job)
            if self.opts.progress:
                watch(self.url, self.suite, self.hashes, lambda: self.step(0))
            else:
                while self.step(POLL_S):
                    pass
        except KeyboardInterrupt:
            self.cancel()
            raise
        self._finish()

    def _submit(self, job: Job) -> None:
        res = task_resources(job.config, self.cluster_gpus, self.opts.jobs_per_gpu)
        env = plugin_env(job.config)
        extra = {"runtime_env": {"env_vars": env}} if env else {}
        ref = self.remote.options(name=f"ba2m {job.label} seed {job.seed}", **res,
                                  **extra).remote(
            self.url, job.config_hash, self.task_opts, res["num_gpus"])
        self.refs[ref] = job

    def step(self, timeout: float) -> bool:
        """Collect finished tasks (waiting up to ``timeout``), resubmit held jobs that became
        claimable; True while tasks or held jobs remain."""
        import ray

        if self.refs:
            ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=timeout)
            for ref in ready:
                job = self.refs.pop(ref, None)  # None: cancelled meanwhile by a failure
                if job is not None:
                    self._collect(ref, job)
        elif self.held and timeout:
            time.sleep(timeout)
        if self.held:
            self._recheck_held()
        return bool(self.refs or self.held)

    def _collect(self, ref: Any, job: Job) -> None:
        import ray

        try:
            outcome, detail = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return
        except ray.exceptions.RayError as exc:  # worker lost MAX_RETRIES+1 times, or a bug
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            self.problems.append(f"{job.label} (seed {job.seed}): Ray task failed: "
                                 f"{lines[-1] if lines else type(exc).__name__}")
            return
        if outcome == "held":
            self.held[job.config_hash] = job
        elif outcome == "missing":
            self.problems.append(
                f"{job.label} (seed {job.seed}): not in the database the Ray worker opened "
                f"({detail}); Ray workers must reach the run's database: use a shared one "
                "such as PostgreSQL (docs/ray.md)")
        elif outcome == "database" and self.db_failure is None:
            self.db_failure = detail
            self.cancel()

    def _recheck_held(self) -> None:
        """A job another worker held: drop it once finished, resubmit it once claimable
        (released, its worker gone from this host, or its heartbeat stale)."""
        from datetime import datetime, timedelta, timezone

        import pandas as pd

        from harness.store.db import ResultsDB
        from harness.execute.worker import STALE_AFTER_S
        from harness.store.workerid import is_dead_local

        stale_before = (datetime.now(timezone.utc).replace(tzinfo=None)
                        - timedelta(seconds=STALE_AFTER_S))
        with ResultsDB(self.url) as db:
            frame = db.jobs_frame().set_index("config_hash")
            for h, job in list(self.held.items()):
                row = frame.loc[h]
                beat = row["heartbeat"]
                if row["status"] in FINISHED:
                    del self.held[h]
                elif row["status"] == JobStatus.PENDING or pd.isna(beat) or beat < stale_before:
                    del self.held[h]
                    self._submit(job)
                elif is_dead_local(row["worker"]):
                    db.expire([h])
                    del self.held[h]
                    self._submit(job)

    def cancel(self) -> None:
        """Cancel every task (a running one gets KeyboardInterrupt and releases its job) and
        give them up to CANCEL_WAIT_S to do so: a cancelled task's result is ready before its
        worker has written the release, so the wait watches the database."""
        import ray

        from harness.store.db import ResultsDB
        from harness.store.workerid import is_dead_local

        self.held.clear()
        hashes = {job.config_hash for job in self.refs.values()}
        for ref in list(self.refs):
            ray.cancel(ref)
        self.refs.clear()
        deadline = time.monotonic() + CANCEL_WAIT_S
        with ResultsDB(self.url) as db:
            while hashes and time.monotonic() < deadline:
                frame = db.jobs_frame()
                held = frame[frame["config_hash"].isin(hashes)
                             & (frame["status"] == JobStatus.RUNNING)]
                if all(is_dead_local(w) for w in held["worker"]):
                    return
                time.sleep(0.2)

    def _finish(self) -> None:
        from harness.store.db import ResultsDB
        from harness.execute.worker import expire_dead_local_workers

        if self.db_failure is not None:
            raise RunFailure(f"a Ray worker could not write the results database: "
                             f"{self.db_failure}")
        with ResultsDB(self.url) as db:  # a job whose last try died is reclaimable at once
            expire_dead_local_workers(db, self.hashes)
        for line in self.problems:
            print(f"ray: {line}", file=sys.stderr)
