"""How many jobs a suite makes under a profile, from its rows alone: what ``ba2m-bench
suites`` prints, without loading the zoo (``harness.plan.jobs.expand`` builds every job's
config, which needs torch). tests/test_plugins.py checks these counts equal
``len(expand(...))`` for every built-in suite and profile."""

from __future__ import annotations

from dataclasses import dataclass

from harness.plan.available import is_available
from harness.plan.profiles import Profile
from suites.base import Row, Suite


@dataclass(frozen=True, kw_only=True)
class SuiteSize:
    """A suite's jobs under one profile, and how many of them can run now."""

    jobs: int
    runnable: int


def training_key(row: Row) -> tuple:
    """Rows with equal keys train one job (they differ only in label, setting or evaluation;
    as ``expand``, which keeps the first of rows that make the same config)."""
    return (row.arch, row.method, repr(sorted(row.model.items())),
            repr(sorted(row.train.items())))


def suite_size(suite: Suite, prof: Profile) -> SuiteSize:
    """The jobs ``expand(suite, prof)`` makes, counted without making them."""
    if suite.recipe is None:  # makes no job (``expand`` says so)
        return SuiteSize(jobs=0, runnable=0)
    seeds = prof.seeds or suite.seeds
    first = {}
    for row in suite.rows:
        first.setdefault(training_key(row), row)
    runnable = sum(is_available(suite, row) for row in first.values())
    return SuiteSize(jobs=len(first) * seeds, runnable=runnable * seeds)
