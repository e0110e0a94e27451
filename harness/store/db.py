"""The results database's reads and writes: :class:`ResultsDB`.

Tables live in :mod:`harness.store.schema`, opening a URL in :mod:`harness.store.connect`,
migrations in :mod:`harness.store.migrations`. Several processes may share one database:
:meth:`ResultsDB.claim` takes a job with a conditional ``UPDATE ... WHERE status = ...`` whose
row count says who won. On PostgreSQL the claim first locks its candidate row with
``SELECT ... FOR NO KEY UPDATE SKIP LOCKED`` (other claimers skip it instead of queueing behind
it), and the bulk writes that SQLite serialises with ``BEGIN IMMEDIATE`` (schema creation,
adding jobs) take a transaction-scoped advisory lock instead. ``ResultsDB(url, read_only=True)``
(``status``, ``report``) writes nothing and waits for no writer.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Select, and_, case, create_engine, func, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from harness.store.connect import (DatabaseError, check_version, default_url, make_engine,
                                   one_line, read_version, to_url)
from harness.store.schema import (ATTEMPT_INFO, ATTEMPT_SETTABLE, EPOCH_METRICS, RESULT_FIELDS,
                                  SCHEMA_VERSION, Attempt, Base, Epoch, EvalResult, Job, Meta,
                                  ModelStats, Result, SuiteJob, dumps, loads, utcnow)
from harness.store.status import JobStatus

PG_LOCK = int.from_bytes(b"ba2mbnch", "big")  # advisory lock key of the exclusive writes


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


# -------------------------------------------------------------------------------- ResultsDB
class ResultsDB:
    """All reads and writes of results; safe to share one file between processes.

    Open one ResultsDB per process (do not carry one across ``fork``). ``read_only=True``
    opens for reading alone: no schema is created, no write lock is taken or waited for, and
    a database that does not exist yet reads as empty (nothing is created on disk).
    """

    def __init__(self, url: str | None = None, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self.engine, self.where = make_engine(to_url(url) if url else default_url(),
                                              read_only=read_only)
        self.url = self.engine.url.render_as_string(hide_password=True)
        self._writer = self.engine.execution_options(ba2m_write=True)
        try:
            self._check_server()
            if read_only:
                self._open_read_only()
            else:
                self._init_schema()
        except BaseException:
            self.engine.dispose()
            raise

    def _open_read_only(self) -> None:
        """Check the version; a database without ba2m tables (or no file) reads as empty."""
        database = self.engine.url.database
        missing = self.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:") \
            and not _exists(database)
        if not missing:
            with self.engine.connect() as conn:
                missing = check_version(self.where, read_version(conn))
        if missing:  # an empty schema in memory: every read finds no rows
            self.engine.dispose()
            self.engine = create_engine("sqlite://", poolclass=StaticPool,
                                        connect_args={"check_same_thread": False})
            Base.metadata.create_all(self.engine)
            self._writer = self.engine.execution_options(ba2m_write=True)

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
                f"{one_line(err.orig or err)}; start the server or fix the URL (--db or "
                "BA2M_DB: postgresql+psycopg://user:pass@host:port/db)") from err

    def _init_schema(self) -> None:
        for retry in (False, True):
            try:
                with self._write(exclusive=True) as s:
                    if check_version(self.where, read_version(s.connection())):
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
        if self.read_only:
            raise RuntimeError("this ResultsDB was opened read-only")
        with Session(self._writer, expire_on_commit=False) as s, s.begin():
            if exclusive and self.engine.dialect.name == "postgresql":
                s.execute(select(func.pg_advisory_xact_lock(PG_LOCK)))
            yield s

    def _frame(self, stmt: Select[Any], json_cols: Sequence[str] = ()) -> pd.DataFrame:
        with self.engine.connect() as conn:
            res = conn.execute(stmt)
            frame = pd.DataFrame(res.all(), columns=list(res.keys()))
        for col in json_cols:
            frame[col] = frame[col].map(loads)
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
        now = utcnow()
        with self._write(exclusive=True) as s:
            known = set(s.scalars(select(Job.config_hash).where(Job.config_hash.in_(hashes))))
            new = [sp for sp in unique if sp.config_hash not in known]
            s.add_all(Job(config_hash=sp.config_hash, group_hash=sp.group_hash, suite=suite,
                          label=sp.label, seed=sp.seed, config=dumps(sp.config),
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
        if unknown := set(info) - set(ATTEMPT_INFO):
            raise ValueError(f"unknown attempt_info keys {sorted(unknown)}; use {ATTEMPT_INFO}")
        info.setdefault("host", socket.gethostname())
        now = utcnow()
        stale = and_(Job.status == JobStatus.RUNNING,
                     or_(Job.heartbeat.is_(None),
                         Job.heartbeat < now - timedelta(seconds=stale_after_s)))
        takeable = or_(Job.status == JobStatus.PENDING, stale,
                       and_(Job.status == JobStatus.FAILED, retry_failed))
        scope = [] if config_hashes is None else [Job.config_hash.in_(list(config_hashes))]
        rank = case((Job.status == JobStatus.PENDING, 0), (Job.status == JobStatus.RUNNING, 1),
                    else_=2)
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
        now = utcnow()
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
        return self._if_owner(job_id, attempt_id, {"heartbeat": utcnow()}, {})

    def set_attempt(self, attempt_id: int, **fields: Any) -> None:
        """Set attempt fields: resumed_from_epoch, note, traceback or any attempt_info key."""
        if unknown := set(fields) - set(ATTEMPT_SETTABLE):
            raise ValueError(f"cannot set {sorted(unknown)}; settable: {ATTEMPT_SETTABLE}")
        with self._write() as s:
            s.execute(update(Attempt).where(Attempt.id == attempt_id).values(**fields))

    def record_epoch(self, job_id: int, epoch: int, diagnostics: dict | None = None,
                     **metrics: float | None) -> None:
        """Insert or overwrite one epoch's metrics (only the given metrics are overwritten);
        ``diagnostics``: what the model reported for the epoch (e.g. BA²M's weight shares)."""
        if unknown := set(metrics) - set(EPOCH_METRICS):
            raise ValueError(f"unknown epoch metrics {sorted(unknown)}; use {EPOCH_METRICS}")
        if diagnostics is not None:
            metrics = {**metrics, "diagnostics": dumps(diagnostics)}  # type: ignore[dict-item]
        with self._write() as s:
            self._upsert(s, Epoch, ["job_id", "epoch"], {"job_id": job_id, "epoch": epoch,
                                                         **metrics})

    def record_eval(self, job_id: int, eval_key: str, top1_err: float | None,
                    top5_err: float | None, extra: dict | None = None) -> None:
        """Insert or overwrite the evaluation ``eval_key`` (e.g. ``"batch_size=8"``)."""
        with self._write() as s:
            self._upsert(s, EvalResult, ["job_id", "eval_key"], {
                "job_id": job_id, "eval_key": eval_key, "top1_err": top1_err,
                "top5_err": top5_err, "extra": None if extra is None else dumps(extra)})

    def complete(self, job_id: int, attempt_id: int, result: dict) -> bool:
        """Store the result and mark the job COMPLETED, in one transaction; False (nothing
        written) if the job is no longer RUNNING under this attempt. Keys other than the
        results columns are merged into ``extra``."""
        row = {k: result[k] for k in RESULT_FIELDS if k in result}
        extra = dict(result.get("extra") or {})
        extra.update({k: v for k, v in result.items() if k not in row and k != "extra"})
        row.update(job_id=job_id, extra=dumps(extra) if extra else None)
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
        now, hashes = utcnow(), list(config_hashes)
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
            ).values(heartbeat=None, updated_at=utcnow())).rowcount

    def requeue(self, config_hashes: Iterable[str],
                statuses: Sequence[str] = (JobStatus.FAILED, JobStatus.CANCELLED)) -> int:
        """Put jobs in ``statuses`` (FAILED or CANCELLED) back to PENDING; returns how many."""
        with self._write() as s:
            return s.execute(update(Job).where(
                Job.config_hash.in_(list(config_hashes)), Job.status.in_(list(statuses))
            ).values(status=JobStatus.PENDING, updated_at=utcnow())).rowcount

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

    def job(self, config_hash: str) -> dict[str, Any] | None:
        """One job's row by config hash (``config`` as a dict), or None."""
        stmt = select(Job.id.label("job_id"), Job.label, Job.seed, Job.config_hash, Job.suite,
                      Job.status, Job.attempts, Job.worker, Job.heartbeat, Job.reason,
                      Job.config).where(Job.config_hash == config_hash)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else row._asdict() | {"config": loads(row.config)}

    def status_counts(self, suite: str | None = None,
                      hashes: Iterable[str] | None = None) -> dict[JobStatus, int]:
        """Jobs per status (all five present): every job, a suite's, or those of ``hashes``."""
        stmt = select(Job.status, func.count()).group_by(Job.status)
        if suite is not None:
            stmt = stmt.join(SuiteJob, SuiteJob.config_hash == Job.config_hash).where(
                SuiteJob.suite == suite)
        if hashes is not None:
            stmt = stmt.where(Job.config_hash.in_(list(hashes)))
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
        cols = [getattr(Result, k) for k in RESULT_FIELDS]
        stmt = select(*self._job_columns(suite), Job.status, *cols, Result.extra, Job.config)
        stmt = stmt.outerjoin(Result, Result.job_id == Job.id)
        return self._frame(self._in_suite(stmt, suite), ["extra", "config"])

    def epochs_frame(self, job: int | str) -> pd.DataFrame:
        """Per-epoch metrics of one job, by job id or config hash, ordered by epoch."""
        where = Job.id == job if isinstance(job, int) else Job.config_hash == job
        stmt = (select(Epoch.job_id, Epoch.epoch, *(getattr(Epoch, m) for m in EPOCH_METRICS),
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

    # ---------------------------------------------------------------------- model stats
    def save_model_stats(self, model_hash: str, params: int, flops: int, fvcore_total: int,
                         counter: str, uncounted: dict) -> None:
        """Insert or overwrite the counted params/FLOPs of one model config."""
        with self._write() as s:
            self._upsert(s, ModelStats, ["model_hash"], {
                "model_hash": model_hash, "params": params, "flops": flops,
                "fvcore_total": fvcore_total, "counter": counter, "uncounted": dumps(uncounted)})

    def model_stats(self, model_hash: str) -> dict[str, Any] | None:
        """The stored counts (``uncounted`` as a dict), or None."""
        with Session(self.engine) as s:
            row = s.scalar(select(ModelStats).where(ModelStats.model_hash == model_hash))
            if row is None:
                return None
            return {"model_hash": row.model_hash, "params": row.params, "flops": row.flops,
                    "fvcore_total": row.fvcore_total, "counter": row.counter,
                    "uncounted": json.loads(row.uncounted)}

    def content_hash(self) -> str:
        """sha256 over every table's rows in primary-key order."""
        digest = hashlib.sha256()
        with self.engine.connect() as conn:
            for name in sorted(Base.metadata.tables):
                table = Base.metadata.tables[name]
                digest.update(f"\0{name}\0".encode())
                for row in conn.execute(select(table).order_by(*table.primary_key.columns)):
                    digest.update((dumps(list(row)) + "\n").encode())
        return digest.hexdigest()


def _exists(path: str) -> bool:
    return Path(path).is_file() and Path(path).stat().st_size > 0
