"""Params/FLOPs of every declared row, checked against the paper's printed values.

Each row's status: ``match`` (within 1 %, or equal at the paper's printed precision),
``counted`` (the paper prints no params/FLOPs for the row: every detection row, whose
detector is counted on one image at its resize limits, see ``harness.costs.counting``),
``deviation`` (listed in ``known_deviations.toml`` with its reason), ``mismatch`` (neither),
or ``unavailable`` (the zoo cannot build the row yet). Tolerances are never widened per row:
a row that does not match is either explained in the data file or fails ``count --check``.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from harness.costs.cache import Spec, count_key, ensure_counts
from harness.costs.counting import Counts
from harness.plan.detection import row_detector
from harness.plan.spec import NotAvailableError, check_available, model_spec
from suites.base import Row, Suite

if TYPE_CHECKING:
    from harness.store.db import ResultsDB

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


def row_spec(suite: Suite, row: Row) -> Spec:
    """What the row counts: its network, or its detector as the paper's profile builds it."""
    return row_detector(suite, row) if suite.task == "detection" else model_spec(suite, row)


def counts_for(suite: Suite, row: Row) -> Counts:
    """Counts of the row's model at the paper's input size (counted in this process unless
    already counted here)."""
    spec = row_spec(suite, row)
    return ensure_counts([spec], workers=1)[count_key(spec)]


def cost_row(suite: Suite, row: Row, counts: Counts | None = None) -> CostRow:
    """Judge one row's ``counts`` (counted now when not given) against the paper."""
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
    c = counts if counts is not None else counts_for(suite, row)
    if c.flops_error:
        return _params_only(base, c)
    ours = {"params_m": c.params_m, "flops_g": c.flops_g}
    diffs = {m: _diff_pct(ours[m], paper[m]) for m in COST_METRICS}
    has_paper = any(v is not None for v in paper.values())
    status, reasons = ("match" if has_paper else "counted"), _ours(suite, row)
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


def _ours(suite: Suite, row: Row) -> list[str]:
    """What a detection row's counts are (the paper prints none to judge them by)."""
    if suite.task != "detection":
        return []
    spec = row_detector(suite, row)
    heads = "" if spec.detector == "retinanet" else "; RoI heads on the test-time caps"
    return [f"ours, not judged (the paper prints no detection costs): one {spec.max_size}x"
            f"{spec.min_size} image{heads}"]


def _params_only(base: dict[str, Any], c: Counts) -> CostRow:
    """A model fvcore could not trace: its params, and why its FLOPs are not counted."""
    return CostRow(**base, params_m=round(c.params_m, 4), flops_g=None, fvcore_total_g=None,
                   params_diff_pct=_diff_pct(c.params_m, base["paper_params_m"]),
                   flops_diff_pct=None, status="counted",
                   reason=f"FLOPs not counted: {c.flops_error}", uncounted="")


def _diff_pct(ours: float, paper: float | None) -> float | None:
    return None if paper is None or paper == 0 else round(100 * (ours - paper) / paper, 2)


def cost_table(suites: list[Suite], db: ResultsDB | None = None,
               workers: int | None = None, *, detection: bool = False) -> list[CostRow]:
    """Counted rows of every classification suite given, and of every detection suite given
    when ``detection`` (their detectors take tens of seconds each to count on a CPU).

    Counts come from ``db``'s ``model_stats`` where it holds them; the others are counted in
    up to ``workers`` processes and stored there (see :mod:`harness.costs.cache`)."""
    tasks = ("classification", "detection") if detection else ("classification",)
    rows = [(s, r, _spec_if_available(s, r)) for s in suites if s.task in tasks
            for r in s.rows]
    counts = ensure_counts([spec for _, _, spec in rows if spec is not None], db, workers)
    return [cost_row(s, r, None if spec is None else counts[count_key(spec)])
            for s, r, spec in rows]


def _spec_if_available(suite: Suite, row: Row) -> Spec | None:
    try:
        check_available(suite, row)
    except NotAvailableError:
        return None
    return row_spec(suite, row)


def unused_deviations(rows: list[CostRow]) -> list[Deviation]:
    """Entries of the data file that no counted row needs (a stale explanation)."""
    used = {r.reason for r in rows if r.status == "deviation"}
    return [d for d in known_deviations() if not any(d.reason in u for u in used)]
