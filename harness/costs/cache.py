"""Counts of each model, kept in the results database's ``model_stats`` table.

``ba2m-bench count`` counts what the database does not hold yet (in parallel processes, one
thread each) and stores it; reports only read (:func:`stored_counts`). A count is stored under
:func:`count_key`: the model config's hash and :func:`code_fingerprint`, a hash of the code that
builds and counts models and of the torch and fvcore versions. A count made by other code is
therefore never read. Within one process, counts are also remembered in memory.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from harness.costs.counting import Counts, count
from harness.plan.spec import ModelSpec
from models.registry import INPUT_SIZE

if TYPE_CHECKING:  # not imported at run time: the counting processes need no database
    from harness.store.db import ResultsDB

#: The ``counter`` column of every stored count.
COUNTER = "harness.costs.counting (paper MACs)"

#: How a count without FLOPs is stored: this key in ``uncounted``, followed by the reason.
FLOPS_ERROR = "FLOPs not counted: "

#: Counts made or read in this process, by :func:`count_key`.
_memo: dict[str, Counts] = {}


@cache
def code_fingerprint() -> str:
    """Hash of the model and counting code and of the torch and fvcore versions."""
    import fvcore

    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256(f"{torch.__version__} {getattr(fvcore, '__version__', '')}".encode())
    for path in sorted([*root.glob("models/**/*.py"), Path(__file__).with_name("counting.py")]):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def count_key(spec: ModelSpec) -> str:
    """The ``model_stats`` key of ``spec``'s counts: model hash @ code fingerprint."""
    return f"{spec.hash()}@{code_fingerprint()}"


def stored_counts(db: ResultsDB, spec: ModelSpec) -> Counts | None:
    """The counts the database holds for ``spec`` made by this code, or None; reads only."""
    row = db.model_stats(count_key(spec))
    if row is None:
        return None
    uncounted = {k: v for k, v in row["uncounted"].items() if not k.startswith(FLOPS_ERROR)}
    error = next((k[len(FLOPS_ERROR):] for k in row["uncounted"] if k.startswith(FLOPS_ERROR)),
                 "")
    return Counts(row["params"], row["flops"], row["fvcore_total"], uncounted=uncounted,
                  flops_error=error)


def ensure_counts(specs: Iterable[ModelSpec], db: ResultsDB | None = None,
                  workers: int | None = None) -> dict[str, Counts]:
    """Counts of every spec, by :func:`count_key`: stored in ``db``, else remembered, else
    counted (in up to ``workers`` processes, default one per CPU). Every count ``db`` lacks
    is stored there, whether counted now or remembered from earlier in this process."""
    wanted = {count_key(s): s for s in specs}
    todo, missing = {}, []
    for key, spec in wanted.items():
        stored = stored_counts(db, spec) if db is not None else None
        if stored is not None:
            _memo[key] = stored
            continue
        missing.append(key)
        if key not in _memo:
            todo[key] = spec
    remembered = [key for key in missing if key not in todo]
    for key, counts in [*((k, _memo[k]) for k in remembered), *_count_all(todo, workers)]:
        _memo[key] = counts
        if db is not None:  # stored as each is counted: an interrupted count keeps its work
            error = {FLOPS_ERROR + counts.flops_error: 0} if counts.flops_error else {}
            db.save_model_stats(key, counts.params, counts.macs, counts.fvcore_total, COUNTER,
                                counts.uncounted | error)
    return {key: _memo[key] for key in wanted}


def forget_counts() -> None:
    """Forget the counts remembered in this process (the database keeps its own)."""
    _memo.clear()


def count_spec(spec: ModelSpec) -> Counts:
    """Count one model, on one thread (as each worker process does)."""
    torch.set_num_threads(1)
    return count(uninitialised(spec), spec.input_size, plugin=bool(spec.plugins))


def uninitialised(spec: ModelSpec) -> torch.nn.Module:
    """The model with zeroed weights: built on the meta device (no random initialisation,
    which is a third of the counting time) then allocated. Counts do not depend on values."""
    with torch.device("meta"):
        model = spec.build()
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            t.zero_()
    return model


def _count_all(todo: dict[str, ModelSpec],
               workers: int | None) -> Iterable[tuple[str, Counts]]:
    """(key, counts) of every spec of ``todo``; in a process pool when more than one worker."""
    if not todo:
        return
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        for key, spec in todo.items():
            yield key, count(uninitialised(spec), spec.input_size, plugin=bool(spec.plugins))
        return
    ctx = multiprocessing.get_context("spawn")
    # the biggest models first, so no worker is left with a long tail
    order = sorted(todo, key=lambda k: -INPUT_SIZE[todo[k].form])
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        yield from zip(order, pool.map(count_spec, [todo[k] for k in order]))
