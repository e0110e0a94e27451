"""The results database: idempotent job adds, atomic claims, upserts, schema checks."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from harness.store.status import JobStatus
from harness.store.connect import DatabaseError, SchemaVersionError, default_url
from harness.store.db import JobSpec, ResultsDB
from harness.store.migrations import upgrade
from harness.store.schema import SCHEMA_VERSION, Attempt, Job, Result

RESULT = {"best_top1_err": 30.0, "best_top5_err": 10.0, "best_epoch": 2, "last_top1_err": 31.0,
          "last_top5_err": 11.0, "epochs": 3, "eval_mode": "batch", "eval_batch_size": 64}


def specs(n: int, prefix: str = "h") -> list[JobSpec]:
    return [JobSpec(f"{prefix}{i:03d}", f"g{i // 3}", f"row {i}", i % 3, {"i": i, "lr": 0.1})
            for i in range(n)]


@pytest.fixture
def db(tmp_path: Path):
    with ResultsDB(f"sqlite:///{tmp_path / 'r.sqlite'}") as rdb:
        yield rdb


def count(rdb: ResultsDB, model: type) -> int:
    with rdb.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def set_status(rdb: ResultsDB, config_hash: str, status: str, **values) -> None:
    with rdb.engine.begin() as conn:
        conn.execute(update(Job).where(Job.config_hash == config_hash)
                     .values(status=status, **values))


# ------------------------------------------------------------------------------------- jobs
def test_add_jobs_is_idempotent_and_links_suites(db: ResultsDB) -> None:
    assert db.add_jobs(specs(5), "table2") == 5
    job = db.claim(["h000"], "w", 60)
    assert db.add_jobs(specs(5), "table2") == 0
    assert count(db, Job) == 5
    assert db.add_jobs(specs(7), "table3") == 2  # two new, five shared
    assert count(db, Job) == 7
    frame = db.jobs_frame("table2")
    assert list(frame.config_hash) == [f"h{i:03d}" for i in range(5)]
    assert len(db.jobs_frame("table3")) == 7
    assert db.jobs_frame().set_index("config_hash").loc["h000", "status"] == JobStatus.RUNNING
    assert db.jobs_frame().set_index("config_hash").loc["h006", "suite"] == "table3"
    assert frame.config[0] == {"i": 0, "lr": 0.1}
    assert db.status_counts("table2") == {
        JobStatus.PENDING: 4, JobStatus.RUNNING: 1, JobStatus.COMPLETED: 0, JobStatus.FAILED: 0,
        JobStatus.CANCELLED: 0}
    assert job is not None and job.config == {"i": 0, "lr": 0.1}


def test_claim_conditions(db: ResultsDB) -> None:
    db.add_jobs(specs(5), "s")
    hashes = [f"h{i:03d}" for i in range(5)]
    set_status(db, "h000", JobStatus.COMPLETED)
    set_status(db, "h001", JobStatus.FAILED, reason="boom")
    set_status(db, "h002", JobStatus.CANCELLED)
    first = db.claim(hashes, "w1", stale_after_s=60)
    assert first is not None and first.config_hash == "h003" and first.attempts == 1
    second = db.claim(hashes, "w1", stale_after_s=60)
    assert second is not None and second.config_hash == "h004"
    assert db.claim(hashes, "w2", stale_after_s=60) is None  # fresh heartbeats are kept
    assert db.claim([], "w2", stale_after_s=60) is None
    # A stale JobStatus.RUNNING job is reclaimed, and its old attempt is ended.
    with db.engine.begin() as conn:
        conn.execute(update(Job).where(Job.config_hash == "h003")
                     .values(heartbeat=Job.heartbeat - timedelta(seconds=120)))
    again = db.claim(hashes, "w2", stale_after_s=60)
    assert again is not None and again.config_hash == "h003" and again.attempts == 2
    old = db.attempts_frame(first.job_id).set_index("attempt_id").loc[first.attempt_id]
    assert old.exit_reason.startswith("lost")
    # JobStatus.FAILED only with retry_failed; JobStatus.COMPLETED and JobStatus.CANCELLED never.
    assert db.claim(hashes, "w3", stale_after_s=3600) is None
    retried = db.claim(hashes, "w3", stale_after_s=3600, retry_failed=True,
                       attempt_info={"gpu_name": "H100", "git_dirty": True})
    assert retried is not None and retried.config_hash == "h001"
    row = db.attempts_frame(retried.job_id).iloc[-1]
    assert row.gpu_name == "H100" and row.git_dirty and row.host
    assert db.claim(hashes, "w3", stale_after_s=3600, retry_failed=True) is None
    assert db.claim(None, "w3", stale_after_s=0) is not None  # stale_after_s=0: any RUNNING
    with pytest.raises(ValueError):
        db.claim(None, "w", 1, attempt_info={"gpu": "x"})


def claim_until_none(db: ResultsDB, name: str) -> list[tuple[str, bool]]:
    """Claim, record one epoch and complete jobs as worker ``name`` until none is left;
    returns (config_hash, completed) for each claim."""
    claimed = []
    while (job := db.claim(None, name, stale_after_s=3600)) is not None:
        db.record_epoch(job.job_id, 1, top1_err=50.0)
        claimed.append((job.config_hash, db.complete(job.job_id, job.attempt_id, RESULT)))
    return claimed


def _worker(url: str, name: str, start, queue) -> None:
    """Open the (fresh) database, add the same 30 jobs as the others, then claim until none."""
    try:
        start.wait()
        with ResultsDB(url) as rdb:
            added = rdb.add_jobs(specs(30), "s")
            claimed = claim_until_none(rdb, name)
        queue.put((added, claimed))
    except BaseException as err:  # reported to the parent rather than hanging it
        queue.put((repr(err), []))


def test_concurrent_workers_open_add_and_claim(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'r.sqlite'}"
    ctx = mp.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, f"w{i}", start, queue)) for i in range(4)]
    for p in procs:
        p.start()
    start.set()
    reports = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(added for added, _ in reports) == [0, 0, 0, 30], reports
    claimed = [c for _, claims in reports for c in claims]
    assert len(claimed) == 30 and len({h for h, _ in claimed}) == 30
    assert all(ok for _, ok in claimed)
    with ResultsDB(url) as rdb:
        assert rdb.status_counts()[JobStatus.COMPLETED] == 30
        assert count(rdb, Result) == 30 and count(rdb, Attempt) == 30
        assert set(rdb.jobs_frame().attempts) == {1}
        assert set(rdb.attempts_frame().exit_reason) == {"completed"}


# ---------------------------------------------------------------------- finishing a job
def test_record_epoch_and_eval_upsert(db: ResultsDB) -> None:
    db.add_jobs(specs(1), "s")
    job = db.claim(None, "w", 60)
    db.record_epoch(job.job_id, 1, top1_err=60.0, lr=0.1)
    db.record_epoch(job.job_id, 2, top1_err=50.0, lr=0.1)
    db.record_epoch(job.job_id, 2, top1_err=45.0, train_loss=1.5)
    frame = db.epochs_frame("h000")
    assert list(frame.epoch) == [1, 2]
    assert frame.top1_err.tolist() == [60.0, 45.0] and frame.train_loss[1] == 1.5
    assert db.epochs_frame(job.job_id).equals(frame)
    with pytest.raises(ValueError):
        db.record_epoch(job.job_id, 3, top1=1.0)
    db.record_eval(job.job_id, "batch_size=8", 40.0, 20.0)
    db.record_eval(job.job_id, "batch_size=8", 41.0, 21.0, extra={"n": 1})
    evals = db.eval_frame("s")
    assert len(evals) == 1 and evals.top1_err[0] == 41.0 and evals.extra[0] == {"n": 1}


def test_complete_fail_release_cancel(db: ResultsDB) -> None:
    db.add_jobs(specs(4), "s")
    a, b, c, d = (db.claim(None, f"w{i}", 60) for i in range(4))
    assert db.complete(a.job_id, a.attempt_id, {**RESULT, "note": "x"})
    assert db.fail(b.job_id, b.attempt_id, "diverged at epoch 3", traceback="Traceback ...")
    assert db.release(c.job_id, c.attempt_id)
    assert db.cancel(["h003", "h000"]) == 1  # JobStatus.COMPLETED stays
    assert not db.heartbeat(d.job_id, d.attempt_id)  # cancelled: the worker should stop
    assert db.status_counts() == {JobStatus.PENDING: 1, JobStatus.RUNNING: 0,
                                  JobStatus.COMPLETED: 1, JobStatus.FAILED: 1,
                                  JobStatus.CANCELLED: 1}
    assert db.failures("s") == [{"label": "row 1", "config_hash": "h001",
                                 "reason": "diverged at epoch 3", "attempts": 1}]
    results = db.results_frame("s").set_index("config_hash")
    assert results.loc["h000", "best_top1_err"] == 30.0
    assert results.loc["h000", "extra"] == {"note": "x"}
    assert results.loc["h001", "status"] == JobStatus.FAILED
    attempts = db.attempts_frame().set_index("job_id")
    assert attempts.exit_reason.tolist() == ["completed", "diverged at epoch 3", "interrupted",
                                             "cancelled"]
    assert attempts.ended_at.notna().all()
    db.set_attempt(a.attempt_id, resumed_from_epoch=2, note="resumed")
    assert db.attempts_frame(a.job_id).resumed_from_epoch[0] == 2
    assert db.requeue(["h001", "h003"]) == 2
    assert db.status_counts()[JobStatus.PENDING] == 3


def test_complete_after_reclaim_does_not_overwrite(db: ResultsDB) -> None:
    db.add_jobs(specs(1), "s")
    old = db.claim(None, "w1", 60)
    new = db.claim(None, "w2", stale_after_s=0)  # the heartbeat is "stale": reclaimed
    assert new is not None and new.job_id == old.job_id and new.attempts == 2
    assert not db.heartbeat(old.job_id, old.attempt_id)
    assert not db.complete(old.job_id, old.attempt_id, RESULT)
    assert not db.fail(old.job_id, old.attempt_id, "late")
    assert count(db, Result) == 0 and db.status_counts()[JobStatus.RUNNING] == 1
    # The same worker name reclaiming its own job still cannot finish the old attempt.
    newer = db.claim(None, "w2", stale_after_s=0)
    assert not db.complete(new.job_id, new.attempt_id, RESULT)
    assert db.complete(newer.job_id, newer.attempt_id, RESULT)
    assert db.results_frame().best_top1_err[0] == 30.0


# ------------------------------------------------------------------------- opening files
def test_schema_version_mismatch_leaves_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with ResultsDB(str(path)) as rdb:
        rdb.add_jobs(specs(2), "s")
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError) as err:
        ResultsDB(f"sqlite:///{path}")
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "99" in message
    assert f"expects {SCHEMA_VERSION}" in message and "--db PATH" in message
    assert path.read_bytes() == before
    con = sqlite3.connect(path)
    con.execute("DELETE FROM meta")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError, match="none"):
        ResultsDB(str(path))
    assert path.read_bytes() == before


def test_garbage_file_and_unknown_driver(tmp_path: Path) -> None:
    for garbage in (b"hello", bytes(range(256)) * 40):
        path = tmp_path / "junk.sqlite"
        path.write_bytes(garbage)
        with pytest.raises(DatabaseError) as err:
            ResultsDB(str(path))
        assert "\n" not in str(err.value) and str(path) in str(err.value)
        assert path.read_bytes() == garbage
    with pytest.raises(DatabaseError) as err:
        ResultsDB("foo://x")
    assert "\n" not in str(err.value) and "foo" in str(err.value)


def test_default_url_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BA2M_DB", raising=False)
    assert default_url() == "sqlite:///results/ba2m.sqlite"
    with ResultsDB() as rdb:
        assert rdb.url.endswith("results/ba2m.sqlite")
    assert (tmp_path / "results" / "ba2m.sqlite").is_file()
    monkeypatch.setenv("BA2M_DB", str(tmp_path / "other" / "x.sqlite"))
    with ResultsDB() as rdb:
        rdb.add_jobs(specs(1), "s")
    assert (tmp_path / "other" / "x.sqlite").is_file()
    monkeypatch.setenv("BA2M_DB", f"sqlite:///{tmp_path / 'y.sqlite'}")
    ResultsDB().close()
    assert (tmp_path / "y.sqlite").is_file()


def test_content_hash_and_stats(db: ResultsDB) -> None:
    empty = db.content_hash()
    assert db.content_hash() == empty
    assert db.results_frame().empty and "best_top1_err" in db.results_frame().columns
    db.add_jobs(specs(2), "s")
    filled = db.content_hash()
    assert filled != empty and db.content_hash() == filled
    db.add_jobs(specs(2), "s")
    assert db.content_hash() == filled  # an idempotent add writes nothing
    assert db.model_stats("m") is None
    db.save_model_stats("m", 25_000_000, 4_100_000_000, 4_200_000_000, "fvcore-0.1.5", {})
    db.save_model_stats("m", 25_000_001, 4_100_000_000, 4_200_000_000, "fvcore-0.1.5",
                        {"aten::foo": 3})
    assert db.model_stats("m")["params"] == 25_000_001
    assert db.model_stats("m")["uncounted"] == {"aten::foo": 3}
    assert db.content_hash() != filled


def test_epoch_diagnostics_are_stored_as_given(db: ResultsDB) -> None:
    db.add_jobs(specs(1), "s")
    job = db.claim(None, "w", 60)
    diag = {"after.0.1": {"max_share_mean": 0.25, "max_share_max": 0.5}}
    db.record_epoch(job.job_id, 1, top1_err=60.0, diagnostics=diag)
    db.record_epoch(job.job_id, 2, top1_err=50.0)
    frame = db.epochs_frame(job.job_id)
    assert frame.diagnostics[0] == diag and frame.diagnostics[1] is None


def test_a_version_1_database_is_refused_then_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    with ResultsDB(str(path)) as rdb:
        rdb.add_jobs(specs(2), "s")
        job = rdb.claim(None, "w", 60)
        rdb.record_epoch(job.job_id, 1, top1_err=60.0)
    con = sqlite3.connect(path)  # what version 1 wrote: no diagnostics column
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("ALTER TABLE epochs DROP COLUMN diagnostics")
    con.execute("CREATE TABLE paper_values (id INTEGER PRIMARY KEY, value FLOAT)")  # until v2
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError, match="ba2m-bench db upgrade"):
        ResultsDB(str(path))
    assert path.read_bytes() == before
    assert upgrade(str(path)) == ("1", str(SCHEMA_VERSION))
    assert upgrade(str(path)) == (str(SCHEMA_VERSION), str(SCHEMA_VERSION))  # idempotent
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert "paper_values" not in tables and "epochs" in tables
    with ResultsDB(str(path)) as rdb:
        frame = rdb.epochs_frame(job.job_id)
        assert frame.top1_err.tolist() == [60.0] and frame.diagnostics[0] is None
        rdb.record_epoch(job.job_id, 2, diagnostics={"m": {"max_share_mean": 0.1}})
        assert rdb.epochs_frame(job.job_id).diagnostics[1] == {"m": {"max_share_mean": 0.1}}


def test_one_job_by_hash_and_counts_of_some_jobs(db: ResultsDB) -> None:
    db.add_jobs(specs(3), "s")
    first, *rest = [sp.config_hash for sp in specs(3)]
    assert db.job("nope") is None
    row = db.job(first)
    assert row["status"] == JobStatus.PENDING and row["config"] == specs(3)[0].config
    claimed = db.claim([first], "w", 60)
    assert db.job(first)["worker"] == "w" and claimed is not None
    counts = db.status_counts(hashes=rest)
    assert counts[JobStatus.PENDING] == 2 and counts[JobStatus.RUNNING] == 0
    assert set(counts) == set(JobStatus)
    assert db.status_counts("s")[JobStatus.RUNNING] == 1


def test_a_read_only_open_neither_writes_nor_waits_for_the_write_lock(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "x.sqlite"
    with ResultsDB(str(missing), read_only=True) as rdb:  # reads as empty, creates nothing
        assert rdb.jobs_frame().empty and sum(rdb.status_counts().values()) == 0
    assert not missing.parent.exists()
    path = tmp_path / "x.sqlite"
    with ResultsDB(str(path)) as rdb:
        rdb.add_jobs(specs(2), "s")
    before = path.read_bytes()
    writer = sqlite3.connect(path, timeout=0.1)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with ResultsDB(str(path), read_only=True) as rdb:
            assert rdb.status_counts("s")[JobStatus.PENDING] == 2
            assert len(rdb.jobs_frame("s")) == 2
            with pytest.raises(RuntimeError, match="read-only"):
                rdb.add_jobs(specs(1), "t")
    finally:
        writer.rollback()
        writer.close()
    assert path.read_bytes() == before
