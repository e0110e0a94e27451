"""Live progress of a run, read from the results database (rich)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess

import pandas as pd
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from harness.store.db import ResultsDB
from harness.store.status import FINISHED, JobStatus

POLL_S = 1.0


def watch(url: str, suite: str, hashes: Sequence[str],
          procs: Sequence[BaseProcess] | Callable[[], bool]) -> None:
    """Show jobs done/total, each running job's epoch and error, and an ETA, until the
    workers exit. ``procs`` is the local worker processes, or a callable saying whether work
    is still going on (called once per refresh; the Ray backend advances its tasks in it)."""
    going = procs if callable(procs) else lambda: any(p.is_alive() for p in procs)
    wanted = set(hashes)
    bar = Progress(TextColumn(f"[bold]{suite}[/]"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("jobs"), TimeRemainingColumn())
    task = bar.add_task(suite, total=len(wanted))
    with ResultsDB(url, read_only=True) as db, \
            Live(Group(bar), refresh_per_second=2, transient=False) as live:
        while True:
            frame = db.jobs_frame(suite)
            frame = frame[frame["config_hash"].isin(wanted)]
            finished = int(frame["status"].isin(FINISHED).sum())
            bar.update(task, completed=finished)
            live.update(Group(bar, _running(db, frame)))
            if not going():
                break
            time.sleep(POLL_S)


def _running(db: ResultsDB, frame: pd.DataFrame) -> Table:
    table = Table(box=None, show_header=True, header_style="dim")
    for col in ("running job", "seed", "epoch", "top-1 err %", "img/s"):
        table.add_column(col)
    for rec in frame[frame["status"] == JobStatus.RUNNING].itertuples():
        epochs = db.epochs_frame(rec.config_hash)
        total = rec.config["train"]["epochs"]
        last = epochs.iloc[-1] if len(epochs) else None
        table.add_row(rec.label, str(rec.seed), f"{len(epochs)}/{total}",
                      "" if last is None else f"{last['top1_err']:.2f}",
                      "" if last is None else f"{last['images_per_s']:.0f}")
    return table
