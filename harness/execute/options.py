"""What ``ba2m-bench run`` takes besides the suite name: one keyword-only option object, built
once by the CLI (or a caller) and passed whole to the runner, its workers and Ray tasks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from harness.plan.overrides import Overrides


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Every setting of a run, each with its one default (the CLI's ``run --help``)."""

    # what to run
    profile: str = "smoke"  # paper, short, mini or smoke (harness.plan.jobs.PROFILES)
    only: str | None = None  # row filter, e.g. "method=ba2m,setting=R=16"
    sets: tuple[str, ...] = ()  # --set [FILTER:]KEY=VALUE overrides of the jobs' configs
    dataset: str | None = None  # a data provider instead of the suite's
    retry_failed: bool = False  # run FAILED jobs again
    add_methods: tuple[str, ...] = ()  # --add-method: a row per backbone for each (name or
    # pkg.module:Class), beside the paper's rows (suites.added)
    plugins: tuple[str, ...] = ()  # --plugin modules, imported here and in every worker
    # how much
    seeds: int | None = None  # seeds per row; None: the profile's
    epochs: int | None = None  # None: the recipe's (scaled by the profile)
    batch_size: int | None = None  # None: the recipe's
    # where
    db_url: str | None = None  # SQLAlchemy URL or SQLite path; None: $BA2M_DB or the default
    results_dir: str = "results"  # checkpoints go under RESULTS_DIR/checkpoints
    data_root: str | None = None  # where the dataset lives
    download: bool = False  # download CIFAR if missing
    # scale
    backend: str = "local"  # "local" (a worker process per slot) or "ray"
    ray_address: str | None = None  # "auto", HOST:PORT, or None for a local Ray
    gpus: str = "all"  # this machine's GPUs for the local backend: "all", "none" or "0,1"
    jobs_per_gpu: int = 1  # concurrent jobs per GPU slot
    gpus_per_job: int | None = None  # data-parallel processes of every job; None: the recipe's
    compile: bool = False  # torch.compile the model
    # display
    progress: bool = True  # the live progress display

    def overrides(self) -> Overrides:
        """The part of the options that changes the jobs themselves."""
        return Overrides(seeds=self.seeds, epochs=self.epochs, only=self.only,
                         dataset=self.dataset, batch_size=self.batch_size, sets=self.sets,
                         gpus_per_job=self.gpus_per_job)

    def for_workers(self) -> RunOptions:
        """The same options with absolute paths, for workers that may start elsewhere."""
        return replace(self, results_dir=str(Path(self.results_dir).absolute()),
                       data_root=None if self.data_root is None
                       else str(Path(self.data_root).absolute()))
