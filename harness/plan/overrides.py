"""Command-line overrides of a profile: what ``run`` changes in the jobs it expands."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Overrides:
    """Command-line overrides of a profile."""

    seeds: int | None = None
    epochs: int | None = None
    only: str | None = None  # row filter, e.g. "method=ba2m,backbone=ResNet-50"
    dataset: str | None = None  # provider instead of the suite's dataset (e.g. image-folder)
    batch_size: int | None = None
    sets: tuple[str, ...] = ()  # "[FILTER:]KEY=VALUE" config overrides (see parse_set)
    gpus_per_job: int | None = None  # data-parallel processes of every job (--gpus-per-job)
