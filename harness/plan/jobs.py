"""Suite -> jobs: every job a suite makes under a profile and the command line's overrides,
each a resolved, hashed config (``harness.plan.classification``, ``harness.plan.detection``).

A job's config says everything that decides its numbers: model, data (provider, sizes; not
where the files live), training recipe, evaluations and seed. Its ``config_hash`` is its
identity across suites (Tables I and XI share jobs); its ``group_hash`` is the same config
without the seed (one table cell).
"""

from __future__ import annotations

from typing import Any

from harness.errors import UserError
from harness.plan.classification import (ClassCounter, classification_jobs, input_size,
                                         not_comparable_reason)
from harness.plan.detection import detection_jobs
from harness.plan.job import Job, arch_name, job_label
from harness.plan.overrides import Overrides, Setting, check_positive, parse_only, parse_set
from harness.plan.profiles import PROFILES, Profile
from suites.base import Suite

__all__ = ["Job", "PROFILES", "Setting", "arch_name", "expand", "input_size", "job_label",
           "not_comparable_reason", "parse_only", "parse_set", "profile", "runtime_config"]


def profile(name: str) -> Profile:
    """The named profile, or a one-line error listing them."""
    if name not in PROFILES:
        raise UserError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def expand(suite: Suite, prof: Profile, over: Overrides = Overrides(), *,
           count_classes: ClassCounter | None = None) -> list[Job]:
    """Every job of ``suite`` under ``prof`` (``count_classes``: see
    :func:`~harness.plan.classification.classification_jobs`)."""
    for name in ("seeds", "epochs", "batch_size", "gpus_per_job"):
        check_positive(name.replace("_", "-"), getattr(over, name))
    if suite.task == "detection":
        return detection_jobs(suite, prof, over)
    if suite.recipe is None:
        raise UserError(f"{suite.name} declares no training recipe; it cannot make jobs")
    return classification_jobs(suite, prof, over, count_classes=count_classes)


def runtime_config(config: dict[str, Any], data_root: str | None, download: bool,
                   compile: bool = False, results_dir: str | None = None) -> dict:
    """The config a worker runs: where the data and results live and whether the model is
    compiled are not part of a job's identity (they do not change its numbers beyond float
    noise)."""
    return {**config, "data": {**config["data"], "data_root": data_root, "download": download},
            "runtime": {"compile": compile, "results_dir": results_dir}}
