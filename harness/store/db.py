"""The results database: jobs, attempts, per-epoch metrics, results, model stats, paper values.

SQLAlchemy 2.x ORM over SQLite (default ``sqlite:///results/ba2m.sqlite``, or ``$BA2M_DB``) or
PostgreSQL (``postgresql+psycopg://user:pass@host/db``; a bare ``postgresql://`` uses psycopg
too). Several processes may share one SQLite file: connections use WAL and a 30 s busy
timeout, write transactions start with ``BEGIN IMMEDIATE``, and :meth:`ResultsDB.claim` takes a
job with a conditional ``UPDATE ... WHERE status = ...`` whose row count says who won. On
PostgreSQL the claim first locks its candidate row with ``SELECT ... FOR NO KEY UPDATE SKIP
LOCKED`` (other claimers skip it instead of queueing behind it), and the bulk writes that
SQLite serialises with ``BEGIN IMMEDIATE`` (schema creation, adding jobs, paper values) take a
transaction-scoped advisory lock instead. Timestamps are naive UTC. JSON columns hold
``json.dumps(..., sort_keys=True)`` text.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (BigInteger, ForeignKey, Select, Text, UniqueConstraint, and_, case,
                        create_engine, event, func, inspect, or_, select, update)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import NullPool

from harness.errors import UserError
from harness.store.status import JobStatus

SCHEMA_VERSION = 2
#: Statements that bring a database from version V to V + 1 (``ba2m-bench db upgrade``).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE epochs ADD COLUMN diagnostics TEXT",),
}
DEFAULT_URL = "sqlite:///results/ba2m.sqlite"
_FIX = "start a new database with --db PATH, or migrate"
_UPGRADE_FIX = "run `ba2m-bench db upgrade` (with the same --db) to migrate it"
_PG_LOCK = int.from_bytes(b"ba2mbnch", "big")  # advisory lock key of the exclusive writes
_PG_DRIVER_FIX = ("install the PostgreSQL driver with pip install -e '.[postgres]' and use a "
                  "URL like postgresql+psycopg://user:pass@host/db")


class DatabaseError(UserError):
    """The results database cannot be opened; the message is one line naming the fix."""


class SchemaVersionError(DatabaseError):
    """The database was written by another schema version."""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _loads(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else None  # pandas turns None into NaN


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


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
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now)


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
    started_at: Mapped[datetime] = mapped_column(default=_now)
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


class PaperValue(Base):
    __tablename__ = "paper_values"
    __table_args__ = (UniqueConstraint("table", "backbone", "method", "setting", "metric"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    table: Mapped[str]
    dataset: Mapped[str] = mapped_column(default="")
    backbone: Mapped[str]
    method: Mapped[str]
    setting: Mapped[str] = mapped_column(default="")
    metric: Mapped[str]
    value: Mapped[float]
    inferred: Mapped[bool] = mapped_column(default=False)


_BA2M_TABLES = frozenset(Base.metadata.tables)
_EPOCH_METRICS = ("train_loss", "train_err", "val_loss", "top1_err", "top5_err", "lr",
                  "images_per_s", "seconds")
_RESULT_FIELDS = ("best_top1_err", "best_top5_err", "best_epoch", "last_top1_err",
                  "last_top5_err", "epochs", "eval_mode", "eval_batch_size")
_ATTEMPT_INFO = ("host", "gpu_name", "torch_version", "cuda_version", "git_commit", "git_dirty",
                 "note")
_ATTEMPT_SETTABLE = _ATTEMPT_INFO + ("resumed_from_epoch", "traceback")


# ----------------------------------------------------------------------------- public types
@dataclass(frozen=True)
class JobSpec:
    """One training job as declared by a suite."""
    config_hash: str
    group_hash: str
    label: str
    seed: int
    config: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker gets from :meth:`ResultsDB.claim`."""
    job_id: int
    attempt_id: int
    config_hash: str
    config: dict[str, Any] = field(hash=False)
    attempts: int = 1
    label: str = ""


# ---------------------------------------------------------------------------- opening a URL
def default_url() -> str:
    """``$BA2M_DB`` (a URL or a SQLite path) if set, else ``sqlite:///results/ba2m.sqlite``."""
    return to_url(os.environ.get("BA2M_DB") or DEFAULT_URL)


def to_url(url_or_path: str) -> str:
    """A URL as given, or a SQLite URL for a plain file path."""
    return url_or_path if "://" in url_or_path else f"sqlite:///{url_or_path}"


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below emits BEGIN
    busy_ms = int(os.environ.get("BA2M_SQLITE_BUSY_MS", 30000))  # wait this long for a lock
    for pragma in (f"busy_timeout={busy_ms}", "foreign_keys=ON", "journal_mode=WAL"):
        dbapi_conn.execute(f"PRAGMA {pragma}")


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("ba2m_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _read_version(conn: Connection) -> tuple[bool, str | None]:
    """(whether any ba2m table exists, the stored schema version or None)."""
    names = set(inspect(conn).get_table_names())
    version = None
    if "meta" in names:
        version = conn.scalar(select(Meta.value).where(Meta.key == "schema_version"))
    return bool(names & _BA2M_TABLES), version


def _check_version(where: str, found: tuple[bool, str | None]) -> bool:
    """True if the database is empty; raises SchemaVersionError if it is from another version."""
    has_tables, version = found
    if not has_tables:
        return True
    if version != str(SCHEMA_VERSION):
        shown = "none (ba2m tables without a version)" if version is None else version
        fix = _UPGRADE_FIX if _upgradable(version) else _FIX
        raise SchemaVersionError(
            f"{where}: results database has schema version {shown}, this ba2m-bench expects "
            f"{SCHEMA_VERSION}; {fix}")
    return False


def _upgradable(version: str | None) -> bool:
    return version is not None and version.isdigit() and int(version) in MIGRATIONS


def upgrade(url: str | None = None) -> tuple[str | None, str]:
    """Migrate the database at ``url`` to :data:`SCHEMA_VERSION` in one transaction;
    returns (version found, version now). Raises SchemaVersionError when no path exists."""
    engine, where = _make_engine(to_url(url) if url else default_url(), check_version=False)
    try:
        writer = engine.execution_options(ba2m_write=True)
        with Session(writer) as s, s.begin():
            has_tables, found = _read_version(s.connection())
            if not has_tables or found == str(SCHEMA_VERSION):
                return found, found or "empty"
            if not _upgradable(found):
                _check_version(where, (has_tables, found))
            version = int(found)  # type: ignore[arg-type]
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    s.connection().exec_driver_sql(statement)
                version += 1
            s.execute(update(Meta).where(Meta.key == "schema_version")
                      .values(value=str(SCHEMA_VERSION)))
        return found, str(SCHEMA_VERSION)
    finally:
        engine.dispose()


def _probe_sqlite_file(path: Path, check_version: bool = True) -> None:
    """Check an existing SQLite file with SELECTs only: no PRAGMA, nothing written."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        header = f.read(16)
    bad = f"{path} is not a SQLite database; give another file with --db PATH (it is left as is)"
    if header != b"SQLite format 3\x00":
        raise DatabaseError(bad)
    uri = f"{path.resolve().as_uri()}?mode=rw"  # rw, not ro: a WAL file's -shm/-wal get removed
    probe = create_engine("sqlite://", poolclass=NullPool,
                          creator=lambda: sqlite3.connect(uri, uri=True))
    try:
        with probe.connect() as conn:
            found = _read_version(conn)
    except sa_exc.DBAPIError as err:
        raise DatabaseError(f"{bad} ({_one_line(err.orig)})") from err
    finally:
        probe.dispose()
    if check_version:
        _check_version(str(path), found)


def _make_engine(url: str, check_version: bool = True) -> tuple[Engine, str]:
    """The engine and a printable name for messages (file path or password-less URL);
    an existing SQLite file of another schema version is refused unless ``check_version``
    is false (``upgrade``)."""
    hint = "use a SQLite path or a URL like sqlite:///results/ba2m.sqlite or postgresql://..."
    shown, parsed = repr(url), None
    try:
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):  # SQLAlchemy would pick psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg")
        shown = repr(parsed.render_as_string(hide_password=True))
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database).absolute()
            _probe_sqlite_file(path, check_version)
            path.parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(path))
        elif parsed.get_backend_name() == "postgresql":
            kwargs["pool_pre_ping"] = True  # a long epoch may outlive an idle pooled connection
            if parsed.get_driver_name() == "psycopg" and "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": 15}
        engine = create_engine(parsed, **kwargs)
    except ImportError as err:
        if parsed is not None and parsed.get_backend_name() == "postgresql":
            raise DatabaseError(f"cannot open results database {shown}: its driver is missing "
                                f"({_one_line(err)}); {_PG_DRIVER_FIX}") from err
        raise DatabaseError(f"cannot open results database {shown}: {_one_line(err)}; {hint}") \
            from err
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ValueError) as err:
        raise DatabaseError(f"cannot open results database {shown}: {_one_line(err)}; {hint}") \
            from err
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise DatabaseError(f"results database {shown}: backend {engine.dialect.name!r} is not "
                            f"supported; {hint}")
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        where = parsed.database or ":memory:"
    else:
        where = parsed.render_as_string(hide_password=True)
    return engine, where


# -------------------------------------------------------------------------------- ResultsDB
class ResultsDB:
    """All reads and writes of results; safe to share one file between processes.

    Open one ResultsDB per process (do not carry one across ``fork``).
    """

    def __init__(self, url: str | None = None) -> None:
        self.engine, self.where = _make_engine(to_url(url) if url else default_url())
        self.url = self.engine.url.render_as_string(hide_password=True)
        self._writer = self.engine.execution_options(ba2m_write=True)
        try:
            self._check_server()
            self._init_schema()
        except BaseException:
            self.engine.dispose()
            raise

    def _check_server(self) -> None:
        """Connect once, so that an unreachable server is one line naming the fix."""
        if self.engine.dialect.name == "sqlite":
            return
        try:
            with self.engine.connect():
                pass
        except sa_exc.DBAPIError as err:
            raise DatabaseError(
                f"cannot connect to results database {self.where!r}: "
                f"{_one_line(err.orig or err)}; start the server or fix the URL (--db or "
                "BA2M_DB: postgresql+psycopg://user:pass@host:port/db)") from err

    def _init_schema(self) -> None:
        for retry in (False, True):
            try:
                with self._write(exclusive=True) as s:
                    if _check_version(self.where, _read_version(s.connection())):
                        Base.metadata.create_all(s.connection(), checkfirst=True)
                        s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            except (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.OperationalError):
                if retry:  # another process created the tables first: check its version
                    raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self, exclusive: bool = False) -> Iterator[Session]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success.

        ``exclusive``: one at a time across processes on PostgreSQL too (an advisory lock held
        to the commit), for writes that read, then insert many rows, like SQLite's."""
        with Session(self._writer, expire_on_commit=False) as s, s.begin():
            if exclusive and self.engine.dialect.name == "postgresql":
                s.execute(select(func.pg_advisory_xact_lock(_PG_LOCK)))
            yield s

    def _frame(self, stmt: Select[Any], json_cols: Sequence[str] = ()) -> pd.DataFrame:
        with self.engine.connect() as conn:
            res = conn.execute(stmt)
            frame = pd.DataFrame(res.all(), columns=list(res.keys()))
        for col in json_cols:
            frame[col] = frame[col].map(_loads)
        return frame

    def _upsert(self, s: Session, model: type[Base], keys: Sequence[str], row: dict) -> None:
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(model).values(**row)
        changes = {k: stmt.excluded[k] for k in row if k not in keys}
        s.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=changes) if changes
                  else stmt.on_conflict_do_nothing(index_elements=list(keys)))

    # ------------------------------------------------------------------------------ jobs
    def add_jobs(self, specs: Iterable[JobSpec], suite: str) -> int:
        """Insert missing jobs and link all to ``suite``; returns how many jobs were new.

        Existing jobs are untouched; an existing link gets the spec's label and position. The
        first spec wins when a config hash repeats.
        """
        unique = list({sp.config_hash: sp for sp in reversed(list(specs))}.values())[::-1]
        hashes = [sp.config_hash for sp in unique]
        now = _now()
        with self._write(exclusive=True) as s:
            known = set(s.scalars(select(Job.config_hash).where(Job.config_hash.in_(hashes))))
            new = [sp for sp in unique if sp.config_hash not in known]
            s.add_all(Job(config_hash=sp.config_hash, group_hash=sp.group_hash, suite=suite,
                          label=sp.label, seed=sp.seed, config=_dumps(sp.config),
                          created_at=now, updated_at=now) for sp in new)
            s.flush()
            links = {ln.config_hash: ln for ln in s.scalars(
                select(SuiteJob).where(SuiteJob.suite == suite, SuiteJob.config_hash.in_(hashes)))}
            for pos, sp in enumerate(unique):
                link = links.get(sp.config_hash)
                if link is None:
                    s.add(SuiteJob(suite=suite, config_hash=sp.config_hash, label=sp.label,
                                   position=pos))
                elif (link.label, link.position) != (sp.label, pos):
                    link.label, link.position = sp.label, pos
        return len(new)

    def claim(self, config_hashes: Sequence[str] | None, worker: str, stale_after_s: float,
              retry_failed: bool = False, attempt_info: dict | None = None) -> ClaimedJob | None:
        """Atomically take one job: PENDING first, then RUNNING with a heartbeat older than
        ``stale_after_s`` (its open attempt is ended as lost), then FAILED if ``retry_failed``."""
        if config_hashes is not None and not config_hashes:
            return None
        info = dict(attempt_info or {})
        if unknown := set(info) - set(_ATTEMPT_INFO):
            raise ValueError(f"unknown attempt_info keys {sorted(unknown)}; use {_ATTEMPT_INFO}")
        info.setdefault("host", socket.gethostname())
        now = _now()
        stale = and_(Job.status == JobStatus.RUNNING,
                     or_(Job.heartbeat.is_(None),
                         Job.heartbeat < now - timedelta(seconds=stale_after_s)))
        takeable = or_(Job.status == JobStatus.PENDING, stale, and_(Job.status == JobStatus.FAILED, retry_failed))
        scope = [] if config_hashes is None else [Job.config_hash.in_(list(config_hashes))]
        rank = case((Job.status == JobStatus.PENDING, 0), (Job.status == JobStatus.RUNNING, 1), else_=2)
        # PostgreSQL locks the candidate, skipping rows other claimers hold (FOR NO KEY
        # UPDATE: an insert referencing the job does not block it); SQLite has no row locks and
        # needs none under BEGIN IMMEDIATE. Either way the conditional UPDATE decides.
        candidate = (select(Job.id).where(takeable, *scope).order_by(rank, Job.id).limit(1)
                     .with_for_update(skip_locked=True, key_share=True))
        lost: list[int] = []
        with self._write() as s:
            while (job_id := s.scalar(candidate.where(Job.id.not_in(lost)))) is not None:
                won = s.execute(update(Job).where(Job.id == job_id, takeable).values(
                    status=JobStatus.RUNNING, worker=worker, heartbeat=now, reason=None,
                    attempts=Job.attempts + 1, updated_at=now
                ).execution_options(synchronize_session=False)).rowcount == 1
                if won:
                    return self._start_attempt(s, job_id, worker, info, now)
                lost.append(job_id)
        return None

    def _start_attempt(self, s: Session, job_id: int, worker: str, info: dict,
                       now: datetime) -> ClaimedJob:
        job = s.get_one(Job, job_id)
        s.execute(update(Attempt).where(Attempt.job_id == job_id, Attempt.ended_at.is_(None))
                  .values(ended_at=now, exit_reason="lost (heartbeat stale, job reclaimed)")
                  .execution_options(synchronize_session=False))
        attempt = Attempt(job_id=job_id, number=job.attempts, worker=worker, started_at=now,
                          **info)
        s.add(attempt)
        s.flush()
        return ClaimedJob(job_id, attempt.id, job.config_hash, json.loads(job.config),
                          job.attempts, job.label)

    def _if_owner(self, job_id: int, attempt_id: int, job_values: dict, attempt_values: dict,
             result: dict | None = None) -> bool:
        """Update the job and attempt only if this attempt still owns the RUNNING job."""
        now = _now()
        with self._write() as s:
            att = s.get(Attempt, attempt_id)
            if att is None or att.job_id != job_id:
                raise ValueError(f"attempt {attempt_id} is not an attempt of job {job_id}")
            owned = s.execute(update(Job).where(
                Job.id == job_id, Job.status == JobStatus.RUNNING, Job.worker == att.worker,
                Job.attempts == att.number).values(updated_at=now, **job_values)
                .execution_options(synchronize_session=False)).rowcount == 1
            if not owned:
                return False
            if result is not None:
                self._upsert(s, Result, ["job_id"], result)
            for key, value in attempt_values.items():
                setattr(att, key, value)
            if "exit_reason" in attempt_values:
                att.ended_at = now
        return True

    def heartbeat(self, job_id: int, attempt_id: int) -> bool:
        """Refresh the heartbeat; False means the job is no longer this attempt's: stop."""
        return self._if_owner(job_id, attempt_id, {"heartbeat": _now()}, {})

    def set_attempt(self, attempt_id: int, **fields: Any) -> None:
        """Set attempt fields: resumed_from_epoch, note, traceback or any attempt_info key."""
        if unknown := set(fields) - set(_ATTEMPT_SETTABLE):
            raise ValueError(f"cannot set {sorted(unknown)}; settable: {_ATTEMPT_SETTABLE}")
        with self._write() as s:
            s.execute(update(Attempt).where(Attempt.id == attempt_id).values(**fields))

    def record_epoch(self, job_id: int, epoch: int, diagnostics: dict | None = None,
                     **metrics: float | None) -> None:
        """Insert or overwrite one epoch's metrics (only the given metrics are overwritten);
        ``diagnostics``: what the model reported for the epoch (e.g. BA²M's weight shares)."""
        if unknown := set(metrics) - set(_EPOCH_METRICS):
            raise ValueError(f"unknown epoch metrics {sorted(unknown)}; use {_EPOCH_METRICS}")
        if diagnostics is not None:
            metrics = {**metrics, "diagnostics": _dumps(diagnostics)}  # type: ignore[dict-item]
        with self._write() as s:
            self._upsert(s, Epoch, ["job_id", "epoch"], {"job_id": job_id, "epoch": epoch,
                                                         **metrics})

    def record_eval(self, job_id: int, eval_key: str, top1_err: float | None,
                    top5_err: float | None, extra: dict | None = None) -> None:
        """Insert or overwrite the evaluation ``eval_key`` (e.g. ``"batch_size=8"``)."""
        with self._write() as s:
            self._upsert(s, EvalResult, ["job_id", "eval_key"], {
                "job_id": job_id, "eval_key": eval_key, "top1_err": top1_err,
                "top5_err": top5_err, "extra": None if extra is None else _dumps(extra)})

    def complete(self, job_id: int, attempt_id: int, result: dict) -> bool:
        """Store the result and mark the job COMPLETED, in one transaction; False (nothing
        written) if the job is no longer RUNNING under this attempt. Keys other than the
        results columns are merged into ``extra``."""
        row = {k: result[k] for k in _RESULT_FIELDS if k in result}
        extra = dict(result.get("extra") or {})
        extra.update({k: v for k, v in result.items() if k not in row and k != "extra"})
        row.update(job_id=job_id, extra=_dumps(extra) if extra else None)
        return self._if_owner(job_id, attempt_id,
                              {"status": JobStatus.COMPLETED, "reason": None},
                              {"exit_reason": "completed"}, result=row)

    def fail(self, job_id: int, attempt_id: int, reason: str, traceback: str | None = None) -> bool:
        """Mark the job FAILED with ``reason``; False if this attempt no longer owns it."""
        return self._if_owner(job_id, attempt_id, {"status": JobStatus.FAILED, "reason": reason},
                         {"exit_reason": reason, "traceback": traceback})

    def release(self, job_id: int, attempt_id: int, reason: str = "interrupted") -> bool:
        """Give the job back (PENDING), e.g. on Ctrl-C; False if this attempt no longer owns it."""
        return self._if_owner(job_id, attempt_id, {"status": JobStatus.PENDING, "reason": reason,
                                              "worker": None, "heartbeat": None},
                         {"exit_reason": reason})

    def cancel(self, config_hashes: Iterable[str]) -> int:
        """Cancel jobs that are not COMPLETED (a running worker's next heartbeat returns False)."""
        now, hashes = _now(), list(config_hashes)
        with self._write() as s:
            ids = list(s.scalars(select(Job.id).where(Job.config_hash.in_(hashes),
                                                      Job.status != JobStatus.COMPLETED,
                                                      Job.status != JobStatus.CANCELLED)))
            s.execute(update(Job).where(Job.id.in_(ids)).values(
                status=JobStatus.CANCELLED, reason="cancelled", updated_at=now))
            s.execute(update(Attempt).where(Attempt.job_id.in_(ids), Attempt.ended_at.is_(None))
                      .values(ended_at=now, exit_reason="cancelled"))
        return len(ids)

    def expire(self, config_hashes: Iterable[str]) -> int:
        """Clear the heartbeat of RUNNING jobs whose worker is known dead, so the next claim
        reclaims them at once instead of waiting for the heartbeat to go stale."""
        with self._write() as s:
            return s.execute(update(Job).where(
                Job.config_hash.in_(list(config_hashes)), Job.status == JobStatus.RUNNING
            ).values(heartbeat=None, updated_at=_now())).rowcount

    def requeue(self, config_hashes: Iterable[str],
                statuses: Sequence[str] = (JobStatus.FAILED, JobStatus.CANCELLED)) -> int:
        """Put jobs in ``statuses`` (FAILED or CANCELLED) back to PENDING; returns how many."""
        with self._write() as s:
            return s.execute(update(Job).where(
                Job.config_hash.in_(list(config_hashes)), Job.status.in_(list(statuses))
            ).values(status=JobStatus.PENDING, updated_at=_now())).rowcount

    # ---------------------------------------------------------------------------- reading
    @staticmethod
    def _in_suite(stmt: Select[Any], suite: str | None) -> Select[Any]:
        if suite is None:
            return stmt.order_by(Job.id)
        return (stmt.join(SuiteJob, SuiteJob.config_hash == Job.config_hash)
                .where(SuiteJob.suite == suite).order_by(SuiteJob.position, Job.id))

    @staticmethod
    def _job_columns(suite: str | None) -> list[Any]:
        label = (SuiteJob.label if suite else Job.label).label("label")
        return [Job.id.label("job_id"), label, Job.seed, Job.config_hash, Job.group_hash]

    def status_counts(self, suite: str | None = None) -> dict[str, int]:
        """Jobs per status, all five statuses present."""
        stmt = select(Job.status, func.count()).group_by(Job.status)
        if suite is not None:
            stmt = stmt.join(SuiteJob, SuiteJob.config_hash == Job.config_hash).where(
                SuiteJob.suite == suite)
        with self.engine.connect() as conn:
            found: dict[str, int] = dict(conn.execute(stmt).all())
        return {status: found.get(status, 0) for status in JobStatus}

    def failures(self, suite: str | None = None) -> list[dict[str, Any]]:
        """FAILED jobs: label, config_hash, reason, attempts."""
        label = (SuiteJob.label if suite else Job.label).label("label")
        stmt = select(label, Job.config_hash, Job.reason, Job.attempts).where(
            Job.status == JobStatus.FAILED)
        with self.engine.connect() as conn:
            return [row._asdict() for row in conn.execute(self._in_suite(stmt, suite))]

    def jobs_frame(self, suite: str | None = None) -> pd.DataFrame:
        """One row per job (in suite order when ``suite`` is given); ``config`` is a dict."""
        suite_col = (SuiteJob.suite if suite else Job.suite).label("suite")
        stmt = select(*self._job_columns(suite), suite_col, Job.status, Job.attempts, Job.worker,
                      Job.heartbeat, Job.reason, Job.created_at, Job.updated_at, Job.config)
        return self._frame(self._in_suite(stmt, suite), ["config"])

    def results_frame(self, suite: str | None = None) -> pd.DataFrame:
        """Every job (left-joined with its result: NaN until COMPLETED); filter on ``status``."""
        cols = [getattr(Result, k) for k in _RESULT_FIELDS]
        stmt = select(*self._job_columns(suite), Job.status, *cols, Result.extra, Job.config)
        stmt = stmt.outerjoin(Result, Result.job_id == Job.id)
        return self._frame(self._in_suite(stmt, suite), ["extra", "config"])

    def epochs_frame(self, job: int | str) -> pd.DataFrame:
        """Per-epoch metrics of one job, by job id or config hash, ordered by epoch."""
        where = Job.id == job if isinstance(job, int) else Job.config_hash == job
        stmt = (select(Epoch.job_id, Epoch.epoch, *(getattr(Epoch, m) for m in _EPOCH_METRICS),
                       Epoch.diagnostics)
                .join(Job, Job.id == Epoch.job_id).where(where).order_by(Epoch.epoch))
        return self._frame(stmt, json_cols=("diagnostics",))

    def eval_frame(self, suite: str | None = None) -> pd.DataFrame:
        """Extra evaluations (one row per job and eval_key)."""
        stmt = select(*self._job_columns(suite), EvalResult.eval_key, EvalResult.top1_err,
                      EvalResult.top5_err, EvalResult.extra).join(
            EvalResult, EvalResult.job_id == Job.id)
        return self._frame(self._in_suite(stmt, suite).order_by(EvalResult.eval_key), ["extra"])

    def attempts_frame(self, job_id: int | None = None) -> pd.DataFrame:
        """Attempts (all, or one job's), oldest first."""
        cols = [c for c in Attempt.__table__.columns if c.name not in ("id", "job_id")]
        stmt = select(Attempt.id.label("attempt_id"), Attempt.job_id, Job.config_hash, Job.label,
                      *cols).join(Job, Job.id == Attempt.job_id).order_by(Attempt.id)
        return self._frame(stmt if job_id is None else stmt.where(Attempt.job_id == job_id))

    # --------------------------------------------------------------- model stats and paper
    def save_model_stats(self, model_hash: str, params: int, flops: int, fvcore_total: int,
                         counter: str, uncounted: dict) -> None:
        """Insert or overwrite the counted params/FLOPs of one model config."""
        with self._write() as s:
            self._upsert(s, ModelStats, ["model_hash"], {
                "model_hash": model_hash, "params": params, "flops": flops,
                "fvcore_total": fvcore_total, "counter": counter, "uncounted": _dumps(uncounted)})

    def model_stats(self, model_hash: str) -> dict[str, Any] | None:
        """The stored counts (``uncounted`` as a dict), or None."""
        with Session(self.engine) as s:
            row = s.scalar(select(ModelStats).where(ModelStats.model_hash == model_hash))
            if row is None:
                return None
            return {"model_hash": row.model_hash, "params": row.params, "flops": row.flops,
                    "fvcore_total": row.fvcore_total, "counter": row.counter,
                    "uncounted": json.loads(row.uncounted)}

    def store_paper_values(self, rows: Iterable[dict[str, Any]]) -> int:
        """Upsert paper numbers keyed by (table, backbone, method, setting, metric)."""
        keys = ["table", "backbone", "method", "setting", "metric"]
        count = 0
        with self._write(exclusive=True) as s:
            for row in rows:
                full = {"dataset": "", "setting": "", "inferred": False, **row}
                self._upsert(s, PaperValue, keys, full)
                count += 1
        return count

    def paper_frame(self) -> pd.DataFrame:
        """All paper values."""
        cols = [c for c in PaperValue.__table__.columns if c.name != "id"]
        return self._frame(select(*cols).order_by(PaperValue.id))

    def content_hash(self) -> str:
        """sha256 over every table's rows in primary-key order."""
        digest = hashlib.sha256()
        with self.engine.connect() as conn:
            for name in sorted(Base.metadata.tables):
                table = Base.metadata.tables[name]
                digest.update(f"\0{name}\0".encode())
                for row in conn.execute(select(table).order_by(*table.primary_key.columns)):
                    digest.update((_dumps(list(row)) + "\n").encode())
        return digest.hexdigest()
