"""A job's status in the results database: one enumeration used by every layer."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job stands. A ``str``: stored and compared as its name ("COMPLETED")."""

    PENDING = "PENDING"  # waiting to be claimed (new, released, or requeued)
    RUNNING = "RUNNING"  # claimed by a worker that heartbeats
    COMPLETED = "COMPLETED"  # trained to its last epoch; its result is stored
    FAILED = "FAILED"  # stopped with a recorded reason (diverged, raised, not available)
    CANCELLED = "CANCELLED"  # taken back by the user


#: Statuses a job no longer leaves by itself.
FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
#: Statuses of a job that still has work to do.
UNFINISHED = frozenset({JobStatus.PENDING, JobStatus.RUNNING})
