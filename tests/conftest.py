"""Shared test fixtures, markers and the rules every test runs under.

- Every test runs in a temporary working directory, with ``BA2M_DB`` unset and ``PYTHONPATH``
  naming this checkout: the commands' default places (``results/``, ``reports/``, the default
  database) are then under that directory, never inside the repository, and the commands a
  test starts as subprocesses import this checkout's code wherever they run.
- ``smoke_db``: one real smoke run per session (see :class:`SmokeDB`), shared by every test
  that only needs "a database with some completed smoke jobs".
- ``pg_server`` / ``pg_url``: a PostgreSQL server and an empty database of the test's own
  (tests/pg.py), available to every module.
- Markers (registered in pyproject.toml): ``slow``, ``faults``, ``ray``, ``postgres``. Nothing
  is deselected by default: ``python -m pytest -q`` runs everything; ``-m "not slow"`` is the
  quick loop. Tests that use the PostgreSQL fixtures of tests/pg.py are marked ``postgres``
  here, whatever their module, and tests that use ``smoke_db`` (or test_count's ``counted``)
  ``slow``.
"""

from __future__ import annotations

import os

# Before torch is imported (here, first): OpenMP threads that sleep when idle instead of
# spinning. The tests run beside their own subprocesses (runners, workers, DDP ranks) and,
# on a shared machine, beside other work; spinning threads then wait on each other and a
# ResNet-50 step takes several times longer (measured: 130 s against 29-45 s for the three
# steps of test_methods_replace's whole-network test on a busy 2-core machine). The runner
# sets the same for its workers; children inherit it. Set it yourself to choose otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.pg import pg_server, pg_url  # noqa: E402,F401 - fixtures for every test module

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# A shell without job control starts background commands with SIGINT ignored, and children
# inherit that: the runs these tests interrupt with Ctrl-C would not see it. Catching SIGINT
# here makes every child start with the default action again, as under a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Set at import, before any test module copies os.environ for its subprocesses: a user's
# BA2M_DB must not reach the tests' commands, and those commands (started from a temporary
# directory) must import this checkout, not whatever else is installed.
os.environ.pop("BA2M_DB", None)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)])


@pytest.fixture(scope="session", autouse=True)
def _outside_the_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's working directory: a temporary one, so that nothing a test runs with a
    default path (``results/``, ``reports/``, ``results/bench/``) writes into the checkout."""
    here = tmp_path_factory.mktemp("cwd")
    before = os.getcwd()
    os.chdir(here)
    try:
        yield here
    finally:
        os.chdir(before)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


#: Fixtures that make every test using them (directly or through another fixture) slow: the
#: session's smoke run, and test_count's counting of every row (about a minute each).
SLOW_FIXTURES = frozenset({"smoke_db", "counted"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the PostgreSQL server of tests/pg.py are ``postgres`` tests; tests that
    use a fixture of SLOW_FIXTURES are ``slow``."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if "pg_server" in used:
            item.add_marker(pytest.mark.postgres)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


def refused_in_one_line(tmp_path: Path, invoke: Any, message: str) -> None:
    """Bad input through the CLI: ``invoke(db)`` (a typer ``Result`` for a database path)
    exits 2 with one line naming ``message``, no traceback, and the stored rows unchanged."""
    from harness.store.db import ResultsDB

    db = tmp_path / "db.sqlite"
    with ResultsDB(str(db)) as rdb:
        rdb.save_model_stats("m", 1, 2, 3, "fvcore", {})
        before = rdb.content_hash()
    out = invoke(db)
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.output, lines
    with ResultsDB(str(db)) as rdb:
        assert rdb.content_hash() == before


def wait_for_first_epoch(proc: subprocess.Popen, db_path: str, timeout: float = 300) -> None:
    """Wait until the run's first job has recorded an epoch (its checkpoint exists)."""
    from harness.store.db import ResultsDB

    deadline = time.time() + timeout
    while time.time() < deadline:
        if Path(db_path).exists():
            with ResultsDB(db_path) as db:
                jobs = db.jobs_frame()
                if len(jobs) and len(db.epochs_frame(jobs["config_hash"][0])) >= 1:
                    return
        assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
        time.sleep(0.5)
    raise AssertionError(f"no epoch recorded in {timeout:.0f} s")


# ----------------------------------------------------------------------- the smoke database
#: The §III-D audit's test batch sizes in the smoke database (256 is capped at the 64
#: validation images).
AUDIT_SIZES = (2, 256)


@dataclass
class SmokeDB:
    """A real smoke run, made once per session: Table VII's two rows with 2 seeds (4 jobs) and
    infer-batch's one job, one epoch each on synthetic images, on the CPU, then the §III-D
    audit of the infer-batch model at :data:`AUDIT_SIZES`.

    The models are the rows' own (ResNet-50 with BA²M): a report finds a row's jobs by their
    model, so a smaller stand-in (``--set model.arch=resnet20``) would leave every row pending.
    What is smaller is infer-batch's images: 32x32 instead of the smoke profile's 64x64 for
    ImageNet rows (``--set data.image_size=32``; the report still finds the row, whose model
    does not depend on the image size), a quarter of its training and audit time.

    Tests may read it and may re-run the same suites with :meth:`options` (which finds
    nothing to do); they must not add or change anything else.
    """

    db: str
    results: str
    root: Path
    summaries: dict[str, dict[str, Any]]
    audit: Any  # the pandas frame run_audit returned
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options(self, suite: str) -> Any:
        """The RunOptions the session ran ``suite`` with."""
        from harness.execute.options import RunOptions

        return RunOptions(profile="smoke", db_url=self.db, results_dir=self.results,
                          gpus="none", progress=False, **self.extra[suite])


@pytest.fixture(scope="session")
def smoke_db(tmp_path_factory: pytest.TempPathFactory) -> SmokeDB:
    from harness.execute.audit import run_audit
    from harness.execute.runner import run_suite

    root = tmp_path_factory.mktemp("smoke-db")
    smoke = SmokeDB(str(root / "ba2m.sqlite"), str(root / "results"), root, {}, None,
                    {"table7": {"seeds": 2},
                     "infer-batch": {"sets": ("data.image_size=32",)}})
    for name in ("table7", "infer-batch"):
        summary = run_suite(name, smoke.options(name))
        assert summary["FAILED"] == 0, summary["failures"]
        smoke.summaries[name] = summary
    smoke.audit = run_audit(smoke.db, smoke.results, batch_sizes=AUDIT_SIZES)
    return smoke
