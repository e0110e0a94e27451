"""What a job needs before it can start: a detection job's pretrained backbone.

A detection job whose ``model.pretrained`` is ``job:<hash>`` starts from that ImageNet job's
checkpoint (``harness.plan.detection``); the runner stops before storing anything, with the
command that trains it, when that job has not COMPLETED or its checkpoint is not under
``--results-dir``. A ``pretrained`` file that does not exist stops it too.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError
from harness.execute.options import RunOptions
from harness.plan.detection import PRETRAIN_SUITE
from harness.plan.detector import NO_WEIGHTS, DetectorSpec
from harness.plan.job import Job
from harness.store.db import ResultsDB
from harness.store.status import JobStatus


def check_pretrained(jobs: list[Job], opts: RunOptions) -> None:
    """A one-line :class:`UserError` for the first runnable job whose backbone weights are
    missing (see the module's docstring)."""
    for job in jobs:
        if job.unavailable is not None or job.config.get("task") != "detection":
            continue
        spec = DetectorSpec(**job.config["model"])
        if spec.pretrained_job is None:
            if spec.pretrained != NO_WEIGHTS and not Path(spec.pretrained).is_file():
                raise UserError(f"{job.label}: model.pretrained {spec.pretrained} is not a file; "
                                "name a torchvision-format ResNet state dict, or none")
            continue
        _check_job(job, spec, opts)


def _check_job(job: Job, spec: DetectorSpec, opts: RunOptions) -> None:
    with ResultsDB(opts.db_url, read_only=True) as db:
        stored = db.job(spec.pretrained_job)  # type: ignore[arg-type]
    state = "not in the database" if stored is None else f"{stored['status']}"
    checkpoint = Path(opts.results_dir) / "checkpoints" / f"{spec.pretrained_job}.pt"
    if stored is not None and stored["status"] == JobStatus.COMPLETED:
        if checkpoint.is_file():
            return
        state = f"COMPLETED but its checkpoint {checkpoint} is missing"
    method = spec.attention or "baseline"
    raise UserError(
        f"{job.label} starts from the ImageNet {spec.arch} / {method} backbone of "
        f"{PRETRAIN_SUITE}'s job {spec.pretrained_job} ({state}); train it first: ba2m-bench run "
        f"{PRETRAIN_SUITE} --profile {job.config['profile']} --only "
        f"arch={spec.arch},method={method} --seeds 1 (or --set model.pretrained=PATH to a "
        "torchvision ResNet state dict)")
