"""The fault campaign: kill -9 of the runner and of a worker at random moments (with corrupted
checkpoints on the way), two runners at once, a diverging job, disk and database write errors,
an older schema, hostile file names and checkpoints. Every case ends with a consistent database
and, where training finishes, with exactly the numbers of an uninterrupted run.

All runs use the real command line on a small CPU job: Table VII's two rows with ResNet-20 for
ResNet-50 (``--set``), 256 synthetic 8x8 images, 3 epochs, one seed.

The slow cases (the uninterrupted reference run, both kill campaigns and the whole runs after
them) are independent: each has a folder, a database and processes of its own. They run side
by side, :data:`LANES` at a time, in background threads started before the module's first test
(see :class:`Scenarios`), while the quick tests run; the tests of the slow cases, last in the
module, each wait for their own case and report its failure. The cases spend most of their
time waiting on a subprocess that starts up (single-threaded imports) or trains a tiny model,
so two at once keep a 2-core machine busy without slowing each other down much. The kill
campaigns record where each kill landed (the jobs' states just after it) and print it.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.store.db import ResultsDB
from harness.errors import UserError
from harness.paths import inside, safe_name
from harness.training.checkpoints import Checkpoint
from harness.training.loop import Hooks, train

SMALL = ["--profile", "smoke", "--gpus", "none", "--no-progress", "--epochs", "3",
         "--set", "model.arch=resnet20", "--set", "model.options.stages=[1,2,3]",
         "--set", "data.train_size=256", "--set", "data.image_size=8"]
ENV = {**os.environ, "BA2M_HEARTBEAT_S": "0.5"}
KILLS = 10  # per campaign, as the issue asks
LANES = 2  # slow cases run at once (class Scenarios)

pytestmark = pytest.mark.faults


def command(tmp: Path, *extra: str, python: tuple[str, ...] = (sys.executable,)) -> list[str]:
    return [*python, "-m", "harness", "run", "table7", *SMALL,
            "--db", str(tmp / "db.sqlite"), "--results-dir", str(tmp / "results"), *extra]


def start(tmp: Path, *extra: str, **kw: Any) -> subprocess.Popen:
    log = open(tmp / "log.txt", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command(tmp, *extra, python=kw.pop("python", (sys.executable,))),
                            env=kw.pop("env", ENV), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, **kw)


def finish(tmp: Path, *extra: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess:
    return subprocess.run(command(tmp, *extra), env=env, capture_output=True, text=True,
                          timeout=600)


def log(tmp: Path) -> str:
    path = tmp / "log.txt"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


# ------------------------------------------------------------------------ database state
def _rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def snapshot(tmp: Path) -> dict[str, Any]:
    """Statuses, results and per-epoch metrics by config hash (timings left out), after
    checking that nothing is duplicated and the file is intact."""
    db = tmp / "db.sqlite"
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert not _rows(db, "SELECT job_id FROM results GROUP BY job_id HAVING COUNT(*) > 1")
    assert not _rows(db, "SELECT job_id, epoch FROM epochs GROUP BY job_id, epoch "
                         "HAVING COUNT(*) > 1")
    join = "JOIN jobs j ON j.id = x.job_id"
    return {
        "status": dict(_rows(db, "SELECT config_hash, status FROM jobs")),
        "results": {r[0]: r[1:] for r in _rows(
            db, "SELECT j.config_hash, best_top1_err, best_top5_err, best_epoch, last_top1_err, "
                f"last_top5_err, x.epochs FROM results x {join}")},
        "epochs": {r[:2]: r[2:] for r in _rows(
            db, "SELECT j.config_hash, epoch, train_loss, train_err, val_loss, top1_err, "
                f"top5_err, lr FROM epochs x {join}")},
    }


def _epochs_recorded(db: Path) -> int:
    try:
        return _rows(db, "SELECT COUNT(*) FROM epochs")[0][0]
    except sqlite3.Error:  # not created yet
        return 0


def completed_attempts(tmp: Path) -> dict[str, int]:
    return dict(_rows(tmp / "db.sqlite", "SELECT j.config_hash, COUNT(*) FROM attempts a JOIN "
                      "jobs j ON j.id = a.job_id WHERE a.exit_reason = 'completed' "
                      "GROUP BY j.config_hash"))


def reference_run(tmp: Path, cases: Scenarios) -> dict[str, Any]:
    """An uninterrupted run of the same command."""
    done = finish(tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    snap = snapshot(tmp)
    assert set(snap["status"].values()) == {"COMPLETED"} and len(snap["results"]) == 2
    assert len(snap["epochs"]) == 6
    return snap


# ------------------------------------------------------------------- slow cases side by side
Case = Callable[[Path, "Scenarios"], Any]


class Scenarios:
    """The module's slow cases, run in the background, :data:`LANES` at a time, in the order
    given: ``case(folder, scenarios)`` in a daemon thread, with a new temporary folder each.
    :meth:`result` waits for one and returns its value or raises its exception (failed
    assertions included) in the test that asks. A case that needs another's result asks for
    it the same way (the reference run goes first, so no lane waits on a queued case)."""

    def __init__(self, cases: list[Case], folder: Callable[[str], Path]) -> None:
        self._queue = list(cases)
        self._futures: dict[Case, Future] = {case: Future() for case in cases}
        self._folder = folder
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._lane, daemon=True, name=f"lane{i}")
                         for i in range(LANES)]
        for thread in self._threads:
            thread.start()

    def _lane(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                case = self._queue.pop(0)
                folder = self._folder(case.__name__)
            future = self._futures[case]
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(case(folder, self))
            except BaseException as exc:  # noqa: BLE001 - raised again in the test that asks
                future.set_exception(exc)

    def result(self, case: Case) -> Any:
        return self._futures[case].result()

    def close(self) -> None:
        """Cancel what has not started; wait for what has (its processes end with it)."""
        with self._lock:
            queued, self._queue = self._queue, []
        for case in queued:
            self._futures[case].cancel()
        for thread in self._threads:
            thread.join()


# ---------------------------------------------------------------------------- processes
def workers(pid: int) -> list[int]:
    """The runner's worker processes (spawned multiprocessing children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            try:
                if b"spawn_main" in Path(f"/proc/{kid}/cmdline").read_bytes():
                    found.append(int(kid))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while any(alive(p) for p in pids):
        assert time.time() < deadline, f"orphaned workers {pids} did not stop"
        time.sleep(0.1)


def corrupt_a_checkpoint(tmp: Path, rng: random.Random) -> str | None:
    """Damage the checkpoint of an unfinished job (truncated, with or without its checksum
    file); returns the note the resumed attempt must then carry. A checkpoint that does not
    match its checksum file is left alone: damaged before (by this, or by a kill between the
    checkpoint's rename and its checksum's) and not loaded since, it would give one note for
    two damages."""
    from harness.training.checkpoints import checkpoint_for

    with ResultsDB(str(tmp / "db.sqlite")) as db:
        jobs = db.jobs_frame("table7")
    for config, status in zip(jobs["config"], jobs["status"]):
        ckpt = checkpoint_for(config, tmp / "results")
        if status == "COMPLETED" or not ckpt.path.exists():
            continue
        data = ckpt.path.read_bytes()
        if not ckpt.sidecar.exists() or \
                ckpt.sidecar.read_text().strip() != hashlib.sha256(data).hexdigest():
            continue
        ckpt.path.write_bytes(data[: len(data) // 2])
        if rng.random() < 0.5:
            ckpt.sidecar.unlink(missing_ok=True)
            return "unreadable"
        return "failed its checksum"
    return None


def notes(tmp: Path) -> list[str]:
    return [n for (n,) in _rows(tmp / "db.sqlite", "SELECT note FROM attempts") if n]


# ----------------------------------------------------------------------------- campaign
def _running(tmp: Path, min_epochs: int) -> list[int]:
    """Worker pids of RUNNING jobs that have recorded at least ``min_epochs`` epochs."""
    try:
        rows = _rows(tmp / "db.sqlite", "SELECT j.worker, COUNT(e.id) FROM jobs j LEFT JOIN "
                     "epochs e ON e.job_id = j.id WHERE j.status = 'RUNNING' GROUP BY j.id")
    except sqlite3.Error:  # not created yet
        return []
    return [int(w.rsplit(":", 1)[1]) for w, n in rows if w and n >= min_epochs]


def _moment(proc: subprocess.Popen, tmp: Path, rng: random.Random, target: str,
            kill_number: int) -> list[int]:
    """Wait for the next kill's moment; returns the worker pids of jobs then running. Every
    third runner kill waits until a job has a checkpoint (so that it can be damaged); half
    the worker kills wait until a job is claimed; the rest fall anywhere, start-up included."""
    if target == "runner" and kill_number % 3 == 2:
        condition, pause = 1, rng.uniform(0.0, 2.0)
    elif target == "worker" and rng.random() < 0.5:
        condition, pause = 0, rng.uniform(0.0, 4.0)
    else:
        condition, pause = None, rng.uniform(1.0, 9.0 if target == "runner" else 5.0)
    deadline = time.time() + 120
    while condition is not None and not _running(tmp, condition) and time.time() < deadline:
        if proc.poll() is not None:
            return []
        time.sleep(0.1)
    try:
        proc.wait(timeout=pause)
    except subprocess.TimeoutExpired:
        pass
    return _running(tmp, 0)


def landing(tmp: Path) -> str:
    """Where a kill landed, read just after it: the jobs' states in order, each a letter
    (Pending, Running, Completed) and its epochs recorded ("no database" before the runner
    made it); "+tmp" while a checkpoint was being written."""
    try:
        rows = _rows(tmp / "db.sqlite", "SELECT j.status, COUNT(e.id) FROM jobs j LEFT JOIN "
                     "epochs e ON e.job_id = j.id GROUP BY j.id ORDER BY j.id")
    except sqlite3.Error:
        rows = []
    if not rows:
        return "no database"
    writing = list((tmp / "results").rglob("*.tmp*"))
    return " ".join(f"{s[0]}{n}" for s, n in rows) + (" +tmp" if writing else "")


def _campaign(tmp_root: Path, cases: Scenarios, target: str) -> dict[str, Any]:
    """Kill ``target`` ("runner" or "worker") with SIGKILL at random moments, re-running the
    same command whenever the runner is gone, until KILLS kills have landed; every run that
    finishes must equal the reference. Returns counts, and where the kills landed."""
    rng = random.Random(f"ba2m-{target}")
    kills = cycles = corruptions = in_training = 0
    landed: Counter[str] = Counter()
    expected_notes: list[str] = []
    while kills < KILLS:
        cycles += 1
        tmp = tmp_root / f"cycle{cycles}"
        tmp.mkdir()
        proc = start(tmp)
        while True:
            busy = _moment(proc, tmp, rng, target, kills) if kills < KILLS else []
            if kills >= KILLS:
                proc.wait(timeout=600)
            if proc.poll() is not None:  # the run ended by itself
                if proc.returncode == 0:
                    break
                assert proc.returncode == 1 and "re-run the same command" in log(tmp), log(tmp)
                proc = start(tmp)  # a worker was killed more often than the runner replaces
                continue
            held = workers(proc.pid)
            if target == "runner":
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                in_training += bool(busy)
                landed[landing(tmp)] += 1
                wait_gone(held)  # an orphaned worker releases its job and exits
                if (kills % 3 == 0 or rng.random() < 0.3) and \
                        (note := corrupt_a_checkpoint(tmp, rng)):
                    corruptions += 1
                    expected_notes.append(note)
                proc = start(tmp)
            else:
                victim = next((p for p in busy if p in held), held[0] if held else None)
                try:
                    os.kill(victim, signal.SIGKILL)  # type: ignore[arg-type]
                    kills += 1
                    in_training += victim in busy
                    landed[landing(tmp)] += 1
                except (TypeError, ProcessLookupError):  # no worker now, or it just ended
                    pass
        got = snapshot(tmp)
        reference = cases.result(reference_run)
        assert got == reference, f"{target} kills changed the numbers (cycle {cycles})\n{log(tmp)}"
        assert set(completed_attempts(tmp).values()) == {1}  # each job completed exactly once
        assert not _rows(tmp / "db.sqlite", "SELECT id FROM attempts WHERE ended_at IS NULL")
        for note in expected_notes:
            assert any(note in n and "restarted from scratch" in n for n in notes(tmp)), notes(tmp)
        expected_notes.clear()
    return {"kills": kills, "while_a_job_ran": in_training, "cycles": cycles,
            "corruptions": corruptions, "landed": dict(sorted(landed.items()))}


def runner_campaign(tmp: Path, cases: Scenarios) -> dict[str, Any]:
    return _campaign(tmp, cases, "runner")


def worker_campaign(tmp: Path, cases: Scenarios) -> dict[str, Any]:
    return _campaign(tmp, cases, "worker")


def test_a_worker_whose_runner_is_gone_claims_nothing(tmp_path: Path) -> None:
    """A worker whose runner was killed while it started up (it then belongs to init, not to
    the runner whose pid it was given) claims no job and ends: it does not run the remaining
    jobs on its own (the runner campaign waits for such orphans to be gone)."""
    from harness.execute.backends.local import _work
    from harness.execute.options import RunOptions
    from harness.execute.runner import plan
    from harness.store.db import JobSpec

    opts = RunOptions(profile="smoke", db_url=str(tmp_path / "db.sqlite"),
                      results_dir=str(tmp_path / "results"), gpus="none", progress=False)
    jobs = plan("table7", opts)
    with ResultsDB(opts.db_url) as db:
        db.add_jobs([JobSpec(j.config_hash, j.group_hash, j.label, j.seed, j.config)
                     for j in jobs], suite="table7")
    _work(opts.db_url, [j.config_hash for j in jobs], opts, runner=os.getpid())  # not our parent
    assert set(snapshot(tmp_path)["status"].values()) == {"PENDING"}
    assert not _rows(tmp_path / "db.sqlite", "SELECT id FROM attempts")


# -------------------------------------------------------------------------- concurrency
def two_runners(tmp: Path, cases: Scenarios) -> None:
    first, second = start(tmp), start(tmp)
    assert first.wait(timeout=600) == 0, log(tmp)
    assert second.wait(timeout=600) == 0, log(tmp)
    assert snapshot(tmp) == cases.result(reference_run)
    attempts = _rows(tmp / "db.sqlite", "SELECT job_id, COUNT(*) FROM attempts GROUP BY job_id")
    assert [n for _, n in attempts] == [1, 1], attempts  # no job ran twice


# ---------------------------------------------------------------------------- divergence
def diverging(tmp_path: Path, cases: Scenarios) -> None:
    nan = ("--set", "setting=inside:train.lr=1e12", "--epochs", "1")
    first = finish(tmp_path, *nan)
    assert first.returncode == 1
    assert "FAILED ResNet-20 / ba2m / inside: diverged at epoch 1" in first.stdout, first.stdout
    status = subprocess.run([sys.executable, "-m", "harness", "status", "table7", "--db",
                             str(tmp_path / "db.sqlite")], capture_output=True, text=True)
    assert "1 completed, 1 failed" in status.stdout
    assert "diverged at epoch 1" in status.stdout, status.stdout
    again = finish(tmp_path, *nan, "--retry-failed", "--only", "setting=inside")
    assert again.returncode == 1
    rows = _rows(tmp_path / "db.sqlite", "SELECT j.label, a.exit_reason FROM attempts a "
                 "JOIN jobs j ON j.id = a.job_id ORDER BY a.id")
    diverged = [r for label, r in rows if "inside" in label]
    assert diverged == ["diverged at epoch 1"] * 2, rows  # run again, failed again
    assert [r for label, r in rows if "between" in label] == ["completed"]


# ------------------------------------------------------------------------- checkpoints
def _config(epochs: int) -> dict[str, Any]:
    return {
        "model": {"arch": "resnet20", "form": "cifar", "num_classes": None, "attention": "ba2m",
                  "options": {"stages": [1, 2, 3]}},
        "data": {"provider": "synthetic", "num_classes": 10, "image_size": 16,
                 "train_size": 64, "val_size": 32},
        "train": {"recipe": "test", "epochs": epochs, "batch_size": 32, "lr": 0.05,
                  "momentum": 0.9, "weight_decay": 5e-4, "nesterov": False, "milestones": [],
                  "gamma": 0.1, "augment": "crop-flip", "eval_batch_size": 32},
        "evals": [], "seed": 0,
    }


@pytest.mark.parametrize("damage", ["truncate", "truncate-no-checksum", "flip-byte"])
def test_a_damaged_checkpoint_is_detected_and_the_job_restarts(tmp_path: Path,
                                                               damage: str) -> None:
    ckpt = Checkpoint(tmp_path / "c.pt")
    train(_config(1), ckpt)
    data = bytearray(ckpt.path.read_bytes())
    if damage == "flip-byte":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 3]
    ckpt.path.write_bytes(bytes(data))
    if damage == "truncate-no-checksum":
        ckpt.sidecar.unlink()
    said: list[tuple[int, str]] = []
    epochs: list[int] = []
    hooks = Hooks(on_resume=lambda e, n: said.append((e, n)),
                  on_epoch=lambda e, m: epochs.append(e))
    result = train(_config(2), ckpt, hooks)
    assert said and said[0][0] == 0 and "restarted from scratch" in said[0][1], said
    assert ("unreadable" if damage == "truncate-no-checksum" else "checksum") in said[0][1]
    assert epochs == [1, 2] and result["epochs"] == 2


def test_a_checkpoint_cannot_run_code(tmp_path: Path) -> None:
    """weights_only loading: a pickle that would run a command is refused, and nothing runs."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    ckpt = Checkpoint(tmp_path / "evil.pt")
    with open(ckpt.path, "wb") as f:
        torch.save({"model": Evil()}, f)  # torch.save pickles it; a plain load would run it
    import hashlib

    ckpt.sidecar.write_text(hashlib.sha256(ckpt.path.read_bytes()).hexdigest())
    state, note = ckpt.load()
    assert state is None and "unreadable" in note
    assert not marker.exists()


# ------------------------------------------------------------------- disk and database
def limited_python(limit: int) -> tuple[str, ...]:
    """Python with a file-size limit of ``limit`` bytes for it and its children (EFBIG instead
    of death by SIGXFSZ: a full disk). Set in a small Python that then becomes the command
    (exec), not in a ``preexec_fn``, which is not safe in a process with threads."""
    code = (f"import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    return (sys.executable, "-c", code)


def checkpoint_write_error(tmp_path: Path, cases: Scenarios) -> None:
    """Checkpoints (about 3 MB) cannot be written under a 1.5 MB file-size limit (EFBIG, as on
    a full disk); the database itself stays small enough to be written."""
    proc = start(tmp_path, python=limited_python(1_500_000))
    assert proc.wait(timeout=600) == 1, log(tmp_path)
    assert "cannot write checkpoint" in log(tmp_path)
    snap = snapshot(tmp_path)
    assert set(snap["status"].values()) == {"FAILED"} and not snap["results"]
    reasons = [r for (r,) in _rows(tmp_path / "db.sqlite", "SELECT reason FROM jobs")]
    assert all(r.startswith("CheckpointError: cannot write checkpoint") and "File too large" in r
               and "--retry-failed" in r for r in reasons), reasons
    assert not list((tmp_path / "results" / "checkpoints").glob("*.tmp*"))  # no leftovers
    done = finish(tmp_path, "--retry-failed")  # space is back
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(tmp_path) == cases.result(reference_run)


def test_a_blocked_results_folder_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("a file where the checkpoints folder should be")
    done = finish(tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: cannot write checkpoints under")
    assert not (tmp_path / "db.sqlite").exists()


def database_write_error(tmp_path: Path, cases: Scenarios) -> None:
    """Another program holds the database's write lock mid-run: the worker cannot record its
    epoch, says so in one line and stops; nothing is marked completed; once the lock is gone
    the same command finishes with the uninterrupted numbers."""
    db = tmp_path / "db.sqlite"
    proc = start(tmp_path, env={**ENV, "BA2M_SQLITE_BUSY_MS": "300"})
    deadline = time.time() + 300
    while not _epochs_recorded(db):
        assert proc.poll() is None and time.time() < deadline, log(tmp_path)
        time.sleep(0.2)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        assert proc.wait(timeout=300) == 1, log(tmp_path)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    out = log(tmp_path)
    assert "the results database failed (OperationalError: database is locked)" in out, out
    assert "error: a worker could not write the results database" in out
    assert "Traceback" not in out
    snap = snapshot(tmp_path)
    assert "COMPLETED" not in snap["status"].values() and not snap["results"], snap["status"]
    done = finish(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(tmp_path) == cases.result(reference_run)


def test_an_older_schema_is_refused_at_the_command_line_and_left_as_is(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    ResultsDB(str(db)).close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    conn.close()  # the last connection folds the write-ahead log into the file
    before = db.read_bytes()
    for args in (["run", "table7", "--profile", "smoke"], ["status"], ["report", "table7"]):
        done = subprocess.run([sys.executable, "-m", "harness", *args, "--db", str(db)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        line = done.stderr.strip()
        assert "\n" not in line and "schema version 0" in line and "start a new database" in line
        assert db.read_bytes() == before


# ------------------------------------------------------------------------------ paths
@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path", "a/../../b", "..", "",
                                  "ResNet-50 / ba2m"])
def test_names_cannot_leave_the_chosen_folder(tmp_path: Path, name: str) -> None:
    path = inside(tmp_path, name)
    assert path.parent == tmp_path and path.resolve().is_relative_to(tmp_path.resolve())
    assert "/" not in safe_name(name) and not safe_name(name).startswith(".")


def test_a_link_that_leads_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "figures").symlink_to(tmp_path.parent)
    with pytest.raises(UserError, match="resolves outside"):
        inside(tmp_path / "reports", "figures", "x.png")


def test_results_files_are_never_unpickled() -> None:
    """Configs and results are JSON text; checkpoints load with weights_only=True: every
    torch.load call in the harness says so (wherever the loading code lives)."""
    import re

    src = Path(__file__).resolve().parents[1] / "harness"
    text = {str(p.relative_to(src)): p.read_text() for p in src.rglob("*.py")}
    assert not [n for n, t in text.items() if "import pickle" in t or "weights_only=False" in t]
    call = re.compile(r"torch\.load\((?:[^()]|\([^()]*\))*\)")
    calls = {n: call.findall(t) for n, t in text.items() if "torch.load(" in t}
    assert calls, "no torch.load found: where are checkpoints loaded?"
    for name, found in calls.items():
        assert len(found) == text[name].count("torch.load("), (name, found)  # each call read
        assert all("weights_only=True" in c for c in found), (name, found)


# ------------------------------------------------------------------------------ the lanes
#: The slow cases in the order they start (the reference first: the others compare with it;
#: then the longest), and the test that checks each.
CASES: dict[Case, str] = {
    reference_run: "",
    runner_campaign: "test_kill_9_of_the_runner_loses_and_doubles_nothing",
    worker_campaign: "test_kill_9_of_a_worker_loses_and_doubles_nothing",
    checkpoint_write_error: "test_a_checkpoint_write_error_fails_the_job_clearly",
    database_write_error: "test_a_database_write_error_stops_clearly_and_a_rerun_resumes",
    diverging: "test_a_diverging_job_fails_alone_and_retry_failed_runs_it_again",
    two_runners: "test_two_runners_at_once_run_each_job_once",
}
NEED_NO_REFERENCE = {diverging}


@pytest.fixture(scope="module", autouse=True)
def scenarios(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    """The slow cases of the selected tests, started side by side (class Scenarios) before the
    module's first test: the quick tests run meanwhile, the slow ones below wait for theirs."""
    selected = {item.originalname for item in request.session.items
                if item.module is request.module}
    cases = [case for case, test in CASES.items() if test in selected]
    if any(case not in NEED_NO_REFERENCE for case in cases):
        cases.insert(0, reference_run)
    running = Scenarios(cases, tmp_path_factory.mktemp)
    try:
        yield running
    finally:
        running.close()


# ------------------------------------------------------------------------- the slow cases
@pytest.mark.slow
def test_kill_9_of_the_runner_loses_and_doubles_nothing(scenarios: Scenarios) -> None:
    counts = scenarios.result(runner_campaign)
    print(f"runner campaign: {counts}")
    assert counts["kills"] == KILLS and counts["corruptions"] >= 1


@pytest.mark.slow
def test_kill_9_of_a_worker_loses_and_doubles_nothing(scenarios: Scenarios) -> None:
    counts = scenarios.result(worker_campaign)
    print(f"worker campaign: {counts}")
    assert counts["kills"] == KILLS


@pytest.mark.slow
def test_a_checkpoint_write_error_fails_the_job_clearly(scenarios: Scenarios) -> None:
    scenarios.result(checkpoint_write_error)


@pytest.mark.slow
def test_a_database_write_error_stops_clearly_and_a_rerun_resumes(
        scenarios: Scenarios) -> None:
    scenarios.result(database_write_error)


@pytest.mark.slow
def test_a_diverging_job_fails_alone_and_retry_failed_runs_it_again(
        scenarios: Scenarios) -> None:
    scenarios.result(diverging)


@pytest.mark.slow
def test_two_runners_at_once_run_each_job_once(scenarios: Scenarios) -> None:
    scenarios.result(two_runners)
