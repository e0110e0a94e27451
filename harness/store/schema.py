"""The results database's tables (SQLAlchemy 2.x ORM) and its schema version.

Timestamps are naive UTC. JSON columns hold ``json.dumps(..., sort_keys=True)`` text
(:func:`dumps`). A change to these tables bumps :data:`SCHEMA_VERSION` and adds to
:data:`MIGRATIONS` the statements that migrate the previous version (``db upgrade``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from harness.store.status import JobStatus

SCHEMA_VERSION = 3
#: Statements that bring a database from version V to V + 1 (``ba2m-bench db upgrade``).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE epochs ADD COLUMN diagnostics TEXT",),
    2: ("DROP TABLE IF EXISTS paper_values",),  # was written on every run and never read
}


def upgradable(version: str | None) -> bool:
    """Whether a database at schema ``version`` has a migration path to this one."""
    return version is not None and version.isdigit() and int(version) in MIGRATIONS


def utcnow() -> datetime:
    """Now, as the naive UTC the tables store."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def dumps(obj: Any) -> str:
    """A JSON column's text: keys sorted, so equal values store equal text."""
    return json.dumps(obj, sort_keys=True, default=str)


def loads(text: Any) -> Any:
    """A JSON column's value; None for NULL (which pandas turns into NaN)."""
    return json.loads(text) if isinstance(text, str) else None


# ----------------------------------------------------------------------------------- tables
class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    config_hash: Mapped[str] = mapped_column(unique=True)
    group_hash: Mapped[str] = mapped_column(index=True)
    suite: Mapped[str]
    label: Mapped[str] = mapped_column(Text)
    seed: Mapped[int]
    config: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(index=True, default=JobStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None]
    heartbeat: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SuiteJob(Base):
    __tablename__ = "suite_jobs"
    __table_args__ = (UniqueConstraint("suite", "config_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    suite: Mapped[str]
    config_hash: Mapped[str] = mapped_column(ForeignKey("jobs.config_hash"), index=True)
    label: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(default=0)


class Attempt(Base):
    __tablename__ = "attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int]
    host: Mapped[str | None]
    worker: Mapped[str]
    gpu_name: Mapped[str | None]
    torch_version: Mapped[str | None]
    cuda_version: Mapped[str | None]
    git_commit: Mapped[str | None]
    git_dirty: Mapped[bool | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    exit_reason: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    resumed_from_epoch: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(Text)


class Epoch(Base):
    __tablename__ = "epochs"
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    epoch: Mapped[int]
    train_loss: Mapped[float | None]
    train_err: Mapped[float | None]
    val_loss: Mapped[float | None]
    top1_err: Mapped[float | None]
    top5_err: Mapped[float | None]
    lr: Mapped[float | None]
    images_per_s: Mapped[float | None]
    seconds: Mapped[float | None]
    diagnostics: Mapped[str | None] = mapped_column(Text)  # JSON: {module: {name: value}}


class Result(Base):
    __tablename__ = "results"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    best_top1_err: Mapped[float | None]
    best_top5_err: Mapped[float | None]
    best_epoch: Mapped[int | None]
    last_top1_err: Mapped[float | None]
    last_top5_err: Mapped[float | None]
    epochs: Mapped[int | None]
    eval_mode: Mapped[str | None]
    eval_batch_size: Mapped[int | None]
    extra: Mapped[str | None] = mapped_column(Text)


class EvalResult(Base):
    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("job_id", "eval_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    eval_key: Mapped[str]
    top1_err: Mapped[float | None]
    top5_err: Mapped[float | None]
    extra: Mapped[str | None] = mapped_column(Text)


class ModelStats(Base):
    __tablename__ = "model_stats"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_hash: Mapped[str] = mapped_column(unique=True)
    params: Mapped[int] = mapped_column(BigInteger)
    flops: Mapped[int] = mapped_column(BigInteger)
    fvcore_total: Mapped[int] = mapped_column(BigInteger)
    counter: Mapped[str]
    uncounted: Mapped[str] = mapped_column(Text)


#: Every table of this schema (a database holding one of them is a ba2m-bench database).
TABLES = frozenset(Base.metadata.tables)
EPOCH_METRICS = ("train_loss", "train_err", "val_loss", "top1_err", "top5_err", "lr",
                 "images_per_s", "seconds")
RESULT_FIELDS = ("best_top1_err", "best_top5_err", "best_epoch", "last_top1_err",
                 "last_top5_err", "epochs", "eval_mode", "eval_batch_size")
ATTEMPT_INFO = ("host", "gpu_name", "torch_version", "cuda_version", "git_commit", "git_dirty",
                "note")
ATTEMPT_SETTABLE = ATTEMPT_INFO + ("resumed_from_epoch", "traceback")

