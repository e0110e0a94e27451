"""Counts of each model, kept in the results database's ``model_stats`` table.

A model is a classification network (:class:`~harness.plan.spec.ModelSpec`, counted at its
input size) or a detector (:class:`~harness.plan.detector.DetectorSpec`, counted on one image
at its resize limits: ``harness.costs.counting.count_detector``).

``ba2m-bench count`` counts what the database does not hold yet (in parallel processes, one
thread each) and stores it; reports only read (:func:`stored_counts`). A count is stored under
:func:`count_key`: the model config's hash and :func:`code_fingerprint`, a hash of the code that
builds and counts models and of the torch, torchvision and fvcore versions. A count made by
other code is therefore never read. Within one process, counts are also remembered in memory.
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
import torchvision

from harness.costs.counting import Counts, count, count_detector
from harness.plan.detector import DetectorSpec
from harness.plan.spec import ModelSpec, stable_hash

if TYPE_CHECKING:  # not imported at run time: the counting processes need no database
    from harness.store.db import ResultsDB

#: The ``counter`` column of every stored count.
COUNTER = "harness.costs.counting (paper MACs)"

#: How a count without FLOPs is stored: this key in ``uncounted``, followed by the reason.
FLOPS_ERROR = "FLOPs not counted: "

#: What can be counted: a classification network or a detector.
Spec = ModelSpec | DetectorSpec

#: Counts made or read in this process, by :func:`count_key`.
_memo: dict[str, Counts] = {}


@cache
def code_fingerprint() -> str:
    """Hash of the model and counting code and of the torch, torchvision (the detectors' heads)
    and fvcore versions."""
    import fvcore

    root = Path(__file__).resolve().parents[2]
    versions = f"{torch.__version__} {torchvision.__version__} {getattr(fvcore, '__version__', '')}"
    h = hashlib.sha256(versions.encode())
    for path in sorted([*root.glob("models/**/*.py"), Path(__file__).with_name("counting.py")]):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def count_key(spec: Spec) -> str:
    """The ``model_stats`` key of ``spec``'s counts: config hash @ code fingerprint."""
    return f"{stable_hash(spec.to_dict())}@{code_fingerprint()}"


def stored_counts(db: ResultsDB, spec: Spec) -> Counts | None:
    """The counts the database holds for ``spec`` made by this code, or None; reads only."""
    row = db.model_stats(count_key(spec))
    if row is None:
        return None
    uncounted = {k: v for k, v in row["uncounted"].items() if not k.startswith(FLOPS_ERROR)}
    error = next((k[len(FLOPS_ERROR):] for k in row["uncounted"] if k.startswith(FLOPS_ERROR)),
                 "")
    return Counts(row["params"], row["flops"], row["fvcore_total"], uncounted=uncounted,
                  flops_error=error)


def ensure_counts(specs: Iterable[Spec], db: ResultsDB | None = None,
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


def count_spec(spec: Spec) -> Counts:
    """Count one model, on one thread (as each worker process does)."""
    torch.set_num_threads(1)
    return count_model(spec)


def count_model(spec: Spec) -> Counts:
    """Count one model: a network at its input size, a detector at its resize limits."""
    if isinstance(spec, DetectorSpec):
        return count_detector(uninitialised(spec))
    return count(uninitialised(spec), spec.input_size, plugin=bool(spec.plugins))


def uninitialised(spec: Spec) -> torch.nn.Module:
    """The model with zeroed weights: built on the meta device (no random initialisation,
    which is a third of the counting time) then allocated. Counts do not depend on values."""
    with torch.device("meta"):
        model = spec.build()
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            t.zero_()
    return model


def _count_all(todo: dict[str, Spec],
               workers: int | None) -> Iterable[tuple[str, Counts]]:
    """(key, counts) of every spec of ``todo``; in a process pool when more than one worker."""
    if not todo:
        return
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        for key, spec in todo.items():
            yield key, count_model(spec)
        return
    ctx = multiprocessing.get_context("spawn")
    # the biggest models first, so no worker is left with a long tail
    order = sorted(todo, key=lambda k: -_pixels(todo[k]))
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        yield from zip(order, pool.map(count_spec, [todo[k] for k in order]))


def _pixels(spec: Spec) -> int:
    """Pixels of the image ``spec`` is counted on (bigger ones take longer)."""
    if isinstance(spec, DetectorSpec):
        return spec.min_size * spec.max_size
    return spec.input_size ** 2
