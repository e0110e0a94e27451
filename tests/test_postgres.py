"""The results database on a real PostgreSQL server (see tests/pg.py for where it comes from):
round trip, atomic claims and schema creation under concurrency, old schemas refused, two
``run`` drivers sharing one database; and the one-line errors when the server or the driver is
missing. Every test that needs the server skips, saying why, when there is none."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select, text, update
from sqlalchemy.engine import make_url

from harness.store.status import JobStatus
from harness.store.connect import DatabaseError, SchemaVersionError
from harness.store.db import ResultsDB
from harness.store.schema import SCHEMA_VERSION, Attempt, Base, Epoch, Meta, Result
from tests import test_db as sqlite_suite
from tests.pg import _free_port

RESULT = sqlite_suite.RESULT
specs = sqlite_suite.specs
count = sqlite_suite.count
ROOT = Path(__file__).resolve().parents[1]


def _spawn(target, url: str, n: int) -> list:
    """Run ``target(url, name, barrier, queue)`` in ``n`` spawned processes released together;
    returns what each put on the queue."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, f"w{i}", barrier, queue)) for i in range(n)]
    for p in procs:
        p.start()
    try:
        return [queue.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


# ------------------------------------------------------------------ the SQLite suite on PG
@pytest.mark.parametrize("name", [
    "test_add_jobs_is_idempotent_and_links_suites", "test_claim_conditions",
    "test_record_epoch_and_eval_upsert", "test_complete_fail_release_cancel",
    "test_complete_after_reclaim_does_not_overwrite", "test_content_hash_and_stats"])
def test_sqlite_db_tests_pass_on_postgres(name: str, pg_url: str) -> None:
    with ResultsDB(pg_url) as db:
        assert db.engine.dialect.name == "postgresql"
        getattr(sqlite_suite, name)(db)


# ---------------------------------------------------------------------------- round trip
def test_round_trip(pg_url: str) -> None:
    with ResultsDB(pg_url) as db:
        empty = db.content_hash()
        assert db.add_jobs(specs(3), "s") == 3 and db.add_jobs(specs(3), "s") == 0
        added = db.content_hash()
        assert added != empty and db.content_hash() == added
        job = db.claim(None, "w", 60, attempt_info={"git_dirty": True, "gpu_name": "cpu"})
        assert job is not None and job.config_hash == "h000" and job.config == {"i": 0, "lr": 0.1}
        db.record_epoch(job.job_id, 1, top1_err=60.0, lr=0.1)
        db.record_epoch(job.job_id, 1, top1_err=55.0, train_loss=1.25)
        with db.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Epoch)) == 1
        epochs = db.epochs_frame(job.job_id)
        assert epochs[["top1_err", "lr", "train_loss"]].values.tolist() == [[55.0, 0.1, 1.25]]
        assert db.heartbeat(job.job_id, job.attempt_id)
        assert db.complete(job.job_id, job.attempt_id, {**RESULT, "note": "pg"})
        results = db.results_frame("s").set_index("config_hash")
        assert results.loc["h000", "status"] == JobStatus.COMPLETED
        assert results.loc["h000", "best_top1_err"] == 30.0
        assert results.loc["h000", "eval_batch_size"] == 64
        assert results.loc["h000", "extra"] == {"note": "pg"}
        assert results.loc["h001", "status"] == JobStatus.PENDING
        attempt = db.attempts_frame(job.job_id).iloc[0]
        assert attempt.exit_reason == "completed" and bool(attempt.git_dirty)
        assert isinstance(attempt.started_at, datetime) and attempt.ended_at >= attempt.started_at
        jobs = db.jobs_frame().set_index("config_hash")
        utc_now = datetime.now(timezone.utc).replace(tzinfo=None)  # stored naive, in UTC
        assert abs(jobs.loc["h000", "heartbeat"] - utc_now) < timedelta(minutes=5)
        db.save_model_stats("m", 25_557_032, 4_110_000_000, 2**40, "fvcore", {"aten::x": 1})
        assert db.model_stats("m")["fvcore_total"] == 2**40  # BIGINT
        filled = db.content_hash()
        assert filled == db.content_hash() and filled != added
    with ResultsDB(pg_url) as db:  # reopened: same content, same hash
        assert db.content_hash() == filled
    with ResultsDB(pg_url, read_only=True) as db:  # a READ ONLY transaction reads the same
        assert db.content_hash() == filled and db.job("h000")["status"] == JobStatus.COMPLETED
        with pytest.raises(RuntimeError, match="read-only"):
            db.add_jobs(specs(1), "t")


# ------------------------------------------------------------------------ concurrency
def _claimer(url: str, name: str, barrier, queue) -> None:
    """Open, add the same 20 jobs as the others, then (all together) claim until none."""
    try:
        barrier.wait(timeout=45)
        with ResultsDB(url) as db:
            added = db.add_jobs(specs(20), "s")
            barrier.wait(timeout=45)
            claimed = sqlite_suite.claim_until_none(db, name)
        queue.put((added, claimed))
    except BaseException as err:  # reported to the parent rather than hanging it
        queue.put((repr(err), []))


def test_concurrent_claims_take_each_job_once(pg_url: str) -> None:
    reports = _spawn(_claimer, pg_url, 4)
    assert all(isinstance(added, int) for added, _ in reports), reports
    assert sum(added for added, _ in reports) == 20
    claimed = [c for _, claims in reports for c in claims]
    assert sorted(h for h, _ in claimed) == [f"h{i:03d}" for i in range(20)], reports
    assert all(ok for _, ok in claimed)
    with ResultsDB(pg_url) as db:
        assert db.status_counts()[JobStatus.COMPLETED] == 20
        assert count(db, Result) == 20 and count(db, Attempt) == 20 and count(db, Epoch) == 20
        assert set(db.jobs_frame().attempts) == {1}
        assert set(db.attempts_frame().exit_reason) == {"completed"}


def _opener(url: str, name: str, barrier, queue) -> None:
    try:
        barrier.wait(timeout=45)
        ResultsDB(url).close()
        queue.put("ok")
    except BaseException as err:
        queue.put(repr(err))


def test_concurrent_schema_creation(pg_url: str) -> None:
    assert _spawn(_opener, pg_url, 4) == ["ok"] * 4
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == set(Base.metadata.tables)
            assert conn.execute(select(Meta.key, Meta.value)).all() == [
                ("schema_version", str(SCHEMA_VERSION))]
    finally:
        engine.dispose()
    with ResultsDB(pg_url) as db:
        assert db.add_jobs(specs(2), "s") == 2


# ---------------------------------------------------------------------- older schema
def _snapshot(url: str) -> dict:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = {"tables": sorted(inspect(conn).get_table_names())}
            for name, table in sorted(Base.metadata.tables.items()):
                found[name] = [tuple(r) for r in conn.execute(
                    select(table).order_by(*table.primary_key.columns))]
        return found
    finally:
        engine.dispose()


def test_older_schema_is_refused_and_untouched(pg_url: str) -> None:
    with ResultsDB(pg_url) as db:
        db.add_jobs(specs(2), "s")
        db.claim(None, "w", 60)
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(update(Meta).where(Meta.key == "schema_version").values(value="0"))
    before = _snapshot(pg_url)
    with pytest.raises(SchemaVersionError) as err:
        ResultsDB(pg_url)
    message = str(err.value)
    assert "\n" not in message and "version 0" in message and f"expects {SCHEMA_VERSION}" in message
    assert make_url(pg_url).database in message
    assert _snapshot(pg_url) == before
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM meta"))
    engine.dispose()
    before = _snapshot(pg_url)
    with pytest.raises(SchemaVersionError, match="none"):
        ResultsDB(pg_url)
    assert _snapshot(pg_url) == before


# --------------------------------------------------------------------- one-line errors
def test_unreachable_server_is_one_line_error() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    url = f"postgresql+psycopg://ba2m:s3cret@127.0.0.1:{_free_port()}/results"
    with pytest.raises(DatabaseError) as err:
        ResultsDB(url)
    message = str(err.value)
    assert "\n" not in message and "s3cret" not in message
    assert "ba2m:***@127.0.0.1" in message and "--db" in message


def test_missing_driver_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    for url in ("postgresql+psycopg://u:pw@localhost/db", "postgresql://u:pw@localhost/db"):
        with pytest.raises(DatabaseError) as err:
            ResultsDB(url)
        message = str(err.value)
        assert "\n" not in message and "pw@" not in message
        assert "pip install -e '.[postgres]'" in message


# -------------------------------------------------------------- two drivers, one database
@pytest.mark.slow
def test_two_run_drivers_share_the_database(pg_url: str, tmp_path: Path) -> None:
    """Two ``run table7`` commands started at once: each job trains once, both exit 0.

    The jobs train a ResNet-20 instead of a ResNet-50 (``--set``): the database is under test,
    not the model, and two ResNet-50s take minutes on a busy 2-core machine."""
    cmd = [sys.executable, "-m", "harness", "run", "table7", "--profile", "smoke", "--gpus",
           "none", "--no-progress", "--db", pg_url, "--results-dir", str(tmp_path / "results"),
           "--set", "model.arch=resnet20", "--set", "model.options.stages=[1,2,3]"]
    env = {k: v for k, v in os.environ.items() if k != "BA2M_DB"}
    env |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    logs = [tmp_path / f"driver{i}.log" for i in range(2)]
    drivers = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log.open("w"),
                                stderr=subprocess.STDOUT, start_new_session=True)
               for log in logs]
    try:
        for d in drivers:
            d.wait(timeout=300)
    finally:
        for d in drivers:
            if d.poll() is None:  # the driver and its workers
                os.killpg(d.pid, signal.SIGKILL)
                d.wait()
    outputs = [log.read_text()[-3000:] for log in logs]
    assert [d.returncode for d in drivers] == [0, 0], outputs
    with ResultsDB(pg_url) as db:
        counts = db.status_counts("table7")
        assert counts[JobStatus.COMPLETED] == 2 and sum(counts.values()) == 2, (counts, outputs)
        jobs = db.jobs_frame("table7")
        assert set(jobs.attempts) == {1}
        attempts = db.attempts_frame()
        assert sorted(attempts.job_id) == sorted(jobs.job_id)  # one attempt per job
        assert set(attempts.exit_reason) == {"completed"}
        assert count(db, Result) == 2
        assert db.results_frame("table7").best_top1_err.notna().all()
        assert JobStatus.RUNNING not in set(jobs.status)
