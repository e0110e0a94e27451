"""Gather everything a report shows from the results database: :func:`build_report`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

import suites as suite_registry
from harness.costs.cache import stored_counts
from harness.costs.compare import cost_row
from harness.errors import UserError
from harness.plan.spec import model_spec
from harness.store.db import ResultsDB
from harness.report.audit import stored_audit
from harness.report.consistency import Flag, consistency_flags
from harness.report.gains import gains_frame
from harness.report.stats import weight_shares
from harness.report.provenance import not_comparable_banner, provenance
from harness.plan.plugins import with_stored_added
from harness.report.tables import RowConfigs, RowReport, build_rows, build_variants, long_frame
from suites.base import Suite

#: ``db``: params/FLOPs as ``ba2m-bench count`` stored them; ``none``: not shown.
COST_MODES = ("db", "none")
MAX_CURVES = 12
#: A module whose largest weight share averages above this in an epoch has collapsed.
COLLAPSE_SHARE = 0.5


@dataclass
class SuiteReport:
    """One paper table or figure with its reproduction."""

    suite: Suite
    rows: list[RowReport]
    gains: pd.DataFrame
    provenance: dict[str, str]
    banner: str | None
    messages: list[str]
    audit: pd.DataFrame
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: the suite's other runs (no paper row uses them), each under the row it varies
    variants: list[RowReport] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.suite.name

    def long(self) -> pd.DataFrame:
        return long_frame(self.rows, self.variants)


@dataclass
class Report:
    """Everything one ``ba2m-bench report`` shows."""

    suites: list[SuiteReport]
    flags: list[Flag]
    database: str
    content_hash: str
    generated_at: str
    costs: str

    @property
    def banner(self) -> str | None:
        """A report-wide warning when any table uses non-paper-profile results."""
        flagged = [s.name for s in self.suites if s.banner]
        if not flagged:
            return None
        return ("NOT COMPARABLE WITH THE PAPER: " + ", ".join(flagged) + " use results of "
                "another experiment than the paper's (smoke, short or mini profile: synthetic, "
                "fewer images or shortened training; or --set, --dataset, --epochs; each table "
                "says which). Their numbers test the pipeline; they are not reproductions of "
                "the paper's values.")


def resolve_names(names: Sequence[str] | None) -> list[str]:
    """Suite names from CLI words: suite names, roman numerals ("V", "III-D") or "all"."""
    if not names or "all" in names:
        return list(suite_registry.names())
    out = []
    for n in names:
        suite = suite_registry.find(n)
        if suite is None:
            raise UserError(f"unknown suite {n!r}; use a suite name "
                            f"({', '.join(suite_registry.names())}), a roman numeral or 'all'")
        out.append(suite.name)
    return list(dict.fromkeys(out))


def check_costs_mode(mode: str) -> None:
    """Raise a UserError unless ``mode`` is one of :data:`COST_MODES`."""
    if mode not in COST_MODES:
        hint = (" (reports only read the database: store the counts with `ba2m-bench count`)"
                if mode == "count" else "")
        raise UserError(f"unknown costs mode {mode!r}; choose one of "
                        f"{', '.join(COST_MODES)}{hint}")


def attach_costs(db: ResultsDB, rows: Sequence[RowReport], mode: str) -> int:
    """Params/FLOPs of each runnable row at the paper's input size, as ``ba2m-bench count``
    stored them in the database (``mode`` "db"; "none" shows none). Returns how many runnable
    rows have no stored counts."""
    check_costs_mode(mode)
    if mode == "none":
        return 0
    missing = 0
    for r in rows:
        if r.status == "unavailable" or r.suite.task != "classification":
            continue
        counts = stored_counts(db, model_spec(r.suite, r.row))
        if counts is None:
            missing += 1
            continue
        c = cost_row(r.suite, r.row, counts)
        r.params_m, r.flops_g = c.params_m, c.flops_g
        r.cost_status = c.status
    return missing


def collapse_warnings(curves: dict[str, pd.DataFrame]) -> list[str]:
    """One line per job whose BA²M weights collapsed: in some epoch, one sample held on
    average more than half of its batch's weight in some module."""
    out = []
    for label, ep in curves.items():
        worst = [(float(f["max_share_mean"].max()), m) for m, f in weight_shares(ep).items()]
        if worst and max(worst)[0] > COLLAPSE_SHARE:
            share, module = max(worst)
            out.append(f"BA²M collapsed in {label}: in module {module} one sample held on "
                       f"average {share:.0%} of its batch's weight in an epoch (see the "
                       "weight-share figure and docs/ba2m-options.md, 'Real images').")
    return out


def _messages(suite: Suite, rows: Sequence[RowReport], audit: pd.DataFrame,
              curves: dict[str, pd.DataFrame], uncounted: int) -> list[str]:
    name = suite.name
    runnable = [r for r in rows if r.status != "unavailable"]
    if not runnable:
        why = rows[0].reason if rows else "no rows"
        return [f"{name} cannot run yet: {why}. The paper's values are shown."]
    out = []
    if not any(r.job_ids for r in runnable):
        out.append(f"no results for {name} yet: run `ba2m-bench run {name} --profile smoke` "
                   f"(a quick pipeline check on synthetic data) or `ba2m-bench run {name} "
                   f"--profile paper` (comparable with the paper).")
    else:
        pending = [r for r in runnable if r.status == "pending"]
        if pending:
            prof = next((r.profile for r in runnable if r.profile), "paper")
            out.append(f"{len(pending)} of {len(rows)} rows pending: run `ba2m-bench run {name} "
                       f"--profile {prof}` to finish them (finished jobs are not rerun).")
        failed = sum(r.n_failed for r in runnable)
        if failed:
            out.append(f"{failed} job(s) failed: see `ba2m-bench status {name}`; rerun with "
                       "--retry-failed.")
        if any(r.other_groups for r in runnable):
            out.append("some rows also have results under other configurations (profile, "
                       "epochs or data); the most comparable one is shown.")
    unavailable = [r for r in rows if r.status == "unavailable"]
    if unavailable:
        out.append(f"{len(unavailable)} row(s) unavailable: {unavailable[0].reason}")
    if uncounted:
        out.append(f"params/FLOPs of {uncounted} row(s) are not stored in this database: run "
                   f"`ba2m-bench count --table {name}` (same --db) to count and store them.")
    out.extend(collapse_warnings(curves))
    if suite.audit and audit.empty and any(r.n_done for r in rows):
        out.append("no §III-D audit stored yet: run `ba2m-bench audit` to evaluate the trained "
                   "model at every test batch size, BA²M active and deactivated.")
    return out


def _curves(db: ResultsDB, rows: Sequence[RowReport]) -> dict[str, pd.DataFrame]:
    """Per-epoch metrics of the first completed seed of each row (one per job)."""
    out: dict[str, pd.DataFrame] = {}
    seen: set[int] = set()
    for r in rows:
        if len(out) >= MAX_CURVES or not r.n_done:
            continue
        jobs = sorted((c.get("seed", 0), j) for c, j in zip(r.configs, r.job_ids))
        for seed, job in jobs:
            if job in seen:
                break
            ep = db.epochs_frame(job)
            if not ep.empty:
                seen.add(job)
                name = r.row.setting or r.row.method
                out[f"{name} ({r.row.backbone}, seed {seed}, job {job})"] = ep
                break
    return out


def build_suite(db: ResultsDB, suite: Suite, results: pd.DataFrame, evals: pd.DataFrame,
                attempts: pd.DataFrame, costs: str) -> SuiteReport:
    """The report of one suite from the database's frames (and the suite's own jobs, read
    from ``db``, for its variants)."""
    linked = db.results_frame(suite.name)
    suite = with_stored_added(suite, linked["config"] if "config" in linked else ())
    refs = RowConfigs(suite)
    rows = build_rows(suite, results, evals, refs)
    variants = build_variants(suite, rows, linked, evals, refs)
    uncounted = attach_costs(db, rows, costs)
    job_ids = {j for r in rows for j in r.job_ids}
    curves = _curves(db, rows)
    audit = stored_audit(evals[evals["job_id"].isin(job_ids)]) if len(evals) else \
        stored_audit(evals)
    messages = _messages(suite, rows, audit, curves, uncounted)
    if variants:
        messages.append(
            f"{len(variants)} variant row(s) (↳): jobs of {suite.name} run otherwise than its "
            "rows' (--set, --dataset, --epochs or another profile), each under the row it "
            "varies and labelled with what differs; their numbers are shown, not compared "
            "with the paper's.")
    return SuiteReport(suite, rows, gains_frame(rows), provenance(rows, attempts),
                       not_comparable_banner(rows), messages, audit, curves, variants)


def build_report(names: Sequence[str] | None = None, db_url: str | None = None,
                 costs: str = "db") -> Report:
    """Every named suite (all by default) beside the paper, with consistency flags; the
    database is opened read-only.

    ``costs``: "db" shows the params/FLOPs ``ba2m-bench count`` stored, "none" skips them.
    """
    chosen = resolve_names(names)
    check_costs_mode(costs)
    with ResultsDB(db_url, read_only=True) as db:
        results = db.results_frame()
        evals = db.eval_frame()
        attempts = db.attempts_frame()
        reports = [build_suite(db, suite_registry.get(n), results, evals, attempts, costs)
                   for n in chosen]
        content = db.content_hash()
        where = db.url
    return Report(reports, consistency_flags(chosen), where, content,
                  datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), costs)

