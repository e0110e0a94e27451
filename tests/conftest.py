"""Shared test fixtures."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# A shell without job control starts background commands with SIGINT ignored, and children
# inherit that: the runs these tests interrupt with Ctrl-C would not see it. Catching SIGINT
# here makes every child start with the default action again, as under a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


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
