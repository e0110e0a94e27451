"""Params/FLOPs of every declared row, checked against the paper's printed values.

Each row's status: ``match`` (within 1 %, or equal at the paper's printed precision),
``counted`` (the paper prints no params/FLOPs for the row),
``deviation`` (listed in ``known_deviations.toml`` with its reason), ``mismatch`` (neither),
or ``unavailable`` (the zoo cannot build the row yet). Tolerances are never widened per row:
a row that does not match is either explained in the data file or fails ``count --check``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from harness.plan.spec import ModelSpec, NotAvailableError, check_available, model_spec
from harness.costs.counting import Counts, count
from models.registry import INPUT_SIZE
from suites.base import Row, Suite

TOLERANCE = 0.01
COST_METRICS = ("params_m", "flops_g")


@dataclass
class CostRow:
    """One declared row, counted."""

    table: str
    dataset: str
    backbone: str
    method: str
    setting: str
    params_m: float | None
    flops_g: float | None
    fvcore_total_g: float | None
    paper_params_m: float | None
    paper_flops_g: float | None
    params_diff_pct: float | None
    flops_diff_pct: float | None
    status: str
    reason: str
    uncounted: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Deviation:
    """A known, explained difference between our count and the paper's."""

    tables: tuple[str, ...]
    backbone: str
    method: str
    settings: tuple[str, ...] | None
    metrics: tuple[str, ...]
    reason: str

    def covers(self, table: str, row: Row, metric: str) -> bool:
        return (
            table in self.tables
            and self.backbone == row.backbone
            and self.method == row.method
            and (self.settings is None or row.setting in self.settings)
            and metric in self.metrics
        )


@cache
def known_deviations() -> tuple[Deviation, ...]:
    """The entries of ``harness/costs/known_deviations.toml``."""
    text = resources.files("harness.costs").joinpath("known_deviations.toml").read_text()
    return tuple(
        Deviation(
            tuple(d["tables"]),
            d["backbone"],
            d["method"],
            tuple(d["settings"]) if "settings" in d else None,
            tuple(d.get("metrics", COST_METRICS)),
            " ".join(d["reason"].split()),
        )
        for d in tomllib.loads(text).get("deviation", [])
    )


def agrees(ours: float, paper: float) -> bool:
    """Within 1 %, or equal when rounded to the paper's printed decimals."""
    if paper == 0:
        return ours == 0
    if abs(ours - paper) / abs(paper) <= TOLERANCE:
        return True
    decimals = len(repr(paper).split(".")[1]) if "." in repr(paper) else 0
    return round(ours, decimals) == paper


_COUNT_CACHE: dict[str, Counts] = {}


def _count_spec(spec: ModelSpec) -> Counts:
    torch.set_num_threads(1)
    return count(_uninitialised(spec), spec.input_size)


def _uninitialised(spec: ModelSpec) -> torch.nn.Module:
    """The model with zeroed weights: built on the meta device (no random initialisation,
    which is a third of the counting time) then allocated. Counts do not depend on values."""
    with torch.device("meta"):
        model = spec.build()
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            t.zero_()
    return model


#: Counts persist here between runs, keyed by model config and a fingerprint of the code that
#: builds and counts models (any change to it, or to torch/fvcore, starts afresh).
DISK_CACHE = Path("results") / "cache" / "counts.json"


@cache
def code_fingerprint() -> str:
    """Hash of the model and counting code and of the torch and fvcore versions."""
    import fvcore

    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256(f"{torch.__version__} {getattr(fvcore, '__version__', '')}".encode())
    for path in sorted([*root.glob("models/**/*.py"), Path(__file__).with_name("counting.py")]):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _load_disk_cache() -> None:
    try:
        stored = json.loads(DISK_CACHE.read_text())
    except (OSError, ValueError):
        return
    if stored.get("fingerprint") != code_fingerprint():
        return
    for key, c in stored.get("counts", {}).items():
        _COUNT_CACHE.setdefault(key, Counts(**c))


def _save_disk_cache() -> None:
    try:
        DISK_CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = DISK_CACHE.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"fingerprint": code_fingerprint(),
                                   "counts": {k: asdict(c) for k, c in _COUNT_CACHE.items()}}))
        os.replace(tmp, DISK_CACHE)
    except OSError:
        pass  # a read-only place only costs the next run its speed


def precount(specs: list[ModelSpec], workers: int | None = None, disk: bool = True) -> None:
    """Count every distinct model once, in parallel processes (one thread each); counts are
    kept in ``DISK_CACHE`` for the next run."""
    if disk:
        _load_disk_cache()
    todo = {s.hash(): s for s in specs if s.hash() not in _COUNT_CACHE}
    if not todo:
        return
    _count_todo(todo, workers)
    if disk:
        _save_disk_cache()


def _count_todo(todo: dict[str, ModelSpec], workers: int | None) -> None:
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        for key, spec in todo.items():
            _COUNT_CACHE[key] = count(_uninitialised(spec), spec.input_size)
        return
    ctx = multiprocessing.get_context("spawn")
    # the biggest models first, so no worker is left with a long tail
    order = sorted(todo, key=lambda k: -INPUT_SIZE[todo[k].form])
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        for key, counts in zip(order, pool.map(_count_spec, [todo[k] for k in order])):
            _COUNT_CACHE[key] = counts


def counts_for(suite: Suite, row: Row) -> Counts:
    """Counts of the row's model at the paper's input size, cached by model hash."""
    spec = model_spec(suite, row)
    if spec.hash() not in _COUNT_CACHE:
        precount([spec], workers=1, disk=False)
    return _COUNT_CACHE[spec.hash()]


def cost_row(suite: Suite, row: Row) -> CostRow:
    """Count one row and judge it against the paper."""
    paper = {m: row.paper.get(m) for m in COST_METRICS}
    base = dict(
        table=suite.table, dataset=suite.dataset, backbone=row.backbone,
        method=row.method, setting=row.setting,
        paper_params_m=paper["params_m"], paper_flops_g=paper["flops_g"],
    )
    try:
        check_available(suite, row)
    except NotAvailableError as exc:
        return CostRow(**base, params_m=None, flops_g=None, fvcore_total_g=None,
                       params_diff_pct=None, flops_diff_pct=None, status="unavailable",
                       reason=str(exc), uncounted="")
    c = counts_for(suite, row)
    ours = {"params_m": c.params_m, "flops_g": c.flops_g}
    diffs = {m: _diff_pct(ours[m], paper[m]) for m in COST_METRICS}
    has_paper = any(v is not None for v in paper.values())
    status, reasons = ("match" if has_paper else "counted"), []
    for metric in COST_METRICS:
        if paper[metric] is None or agrees(ours[metric], paper[metric]):
            continue
        dev = next((d for d in known_deviations() if d.covers(suite.table, row, metric)), None)
        if dev is None:
            status = "mismatch"
            reasons.append(f"{metric}: no known deviation explains {diffs[metric]:+.1f} %")
        else:
            status = "deviation" if status == "match" else status
            if dev.reason not in reasons:
                reasons.append(dev.reason)
    return CostRow(
        **base,
        params_m=round(c.params_m, 4),
        flops_g=round(c.flops_g, 4),
        fvcore_total_g=round(c.fvcore_total_g, 4),
        params_diff_pct=diffs["params_m"],
        flops_diff_pct=diffs["flops_g"],
        status=status,
        reason=" | ".join(reasons),
        uncounted=", ".join(f"{op} x{n}" for op, n in sorted(c.uncounted.items())),
    )


def _diff_pct(ours: float, paper: float | None) -> float | None:
    return None if paper is None or paper == 0 else round(100 * (ours - paper) / paper, 2)


def cost_table(suites: list[Suite], disk: bool = True) -> list[CostRow]:
    """Counted rows of every classification suite given (detection tables have no costs);
    ``disk=False`` ignores the counts kept from earlier runs."""
    specs = []
    for s in suites:
        for r in s.rows:
            try:
                check_available(s, r)
            except NotAvailableError:
                continue
            specs.append(model_spec(s, r))
    precount(specs, disk=disk)
    return [
        cost_row(s, r)
        for s in suites
        if s.task == "classification"
        for r in s.rows
    ]


def unused_deviations(rows: list[CostRow]) -> list[Deviation]:
    """Entries of the data file that no counted row needs (a stale explanation)."""
    used = {r.reason for r in rows if r.status == "deviation"}
    return [d for d in known_deviations() if not any(d.reason in u for u in used)]
