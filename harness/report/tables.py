"""Suite rows joined with stored results: one :class:`RowReport` per paper row.

A row's jobs are found by content, not by the suite they were run under: a job belongs to a
row when its model (architecture, form, attention and every option; not the class count),
recipe and extra evaluations are the row's. Tables I and XI, or VII 'between' and VIII R=32,
therefore share results. Of the matching jobs the report uses one group (one config without
the seed): the most comparable profile (paper > short > mini > smoke), then the most completed
seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.plan.spec import NotAvailableError, check_available, model_spec
from harness.store.status import JobStatus
from harness.plan.jobs import not_comparable_reason
from harness.report.stats import RULE, Summary, summarize, within_rule
from suites.base import Row, Suite

#: Profiles from most to least comparable with the paper.
PROFILE_RANK = {"paper": 0, "short": 1, "mini": 2, "smoke": 3}
ERROR_METRICS = ("err", "top1_err", "top5_err")
COST_METRICS = ("params_m", "flops_g")
METRIC_LABELS = {
    "params_m": "Params (M)", "flops_g": "FLOPs (G)", "err": "Err (%)",
    "top1_err": "Top-1 err (%)", "top5_err": "Top-5 err (%)", "std": "std",
    "recall": "Recall", "map": "mAP",
    **{f"{ap}_{kind}": f"{shown} {name}"
       for ap, shown in (("ap", "AP"), ("ap50", "AP50"), ("ap75", "AP75"), ("aps", "AP_S"),
                         ("apm", "AP_M"), ("apl", "AP_L"))
       for kind, name in (("bb", "box"), ("mask", "mask"))},
}
STATUSES = ("reproduced", "differs", "pending", "unavailable", "not comparable",
            "no paper value")


def headline_statistic(suite: Suite) -> str:
    """The statistic over seeds the suite declares: ``"mean"`` for tables printed as mean
    error and std (VII, VIII, IX, XIII) and Fig. 5, else ``"median"`` (the paper: median of
    five runs, best epoch)."""
    return suite.statistic


def error_metric(suite: Suite) -> str | None:
    """The suite's main error column (``err`` or ``top1_err``), None for detection."""
    return next((m for m in ("err", "top1_err") if m in suite.metrics), None)


@dataclass
class RowReport:
    """One paper row beside its reproduction."""

    suite: Suite
    row: Row
    statistic: str  # "median" or "mean"
    source: str  # "best epoch" or "eval batch_size=8"
    status: str  # one of STATUSES
    status_text: str  # e.g. "pending (1/5 seeds)"
    n_done: int = 0
    n_expected: int = 0
    n_failed: int = 0
    profile: str | None = None
    comparable: bool = False
    why_not_comparable: str = ""  # e.g. "smoke profile", "--set train.lr=0.05"
    group_hash: str | None = None
    job_ids: list[int] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)
    top1: Summary = field(default_factory=lambda: Summary(()))  # headline source
    top5: Summary = field(default_factory=lambda: Summary(()))
    best_top1: Summary = field(default_factory=lambda: Summary(()))
    last_top1: Summary = field(default_factory=lambda: Summary(()))
    params_m: float | None = None
    flops_g: float | None = None
    cost_status: str = ""
    reason: str = ""
    other_groups: int = 0  # further matching configs not used

    @property
    def label(self) -> str:
        return self.row.label

    def summary(self, metric: str) -> Summary:
        return self.top5 if metric == "top5_err" else self.top1

    def reproduced(self, metric: str) -> float:
        """The headline reproduced value of ``metric`` (NaN when there is none)."""
        if metric in COST_METRICS:
            value = self.params_m if metric == "params_m" else self.flops_g
            return math.nan if value is None else float(value)
        if metric == "std":
            return self.top1.std
        if metric in ERROR_METRICS:
            return self.summary(metric).stat(self.statistic)
        return math.nan


# ------------------------------------------------------------------------------ matching
def expected_evals(suite: Suite, row: Row) -> list[dict[str, Any]]:
    """The extra evaluations a job of ``row`` carries (as ``harness.plan.jobs`` builds them)."""
    def key(r: Row) -> tuple:
        return (r.backbone, r.arch, r.method, repr(sorted(r.model.items())),
                repr(sorted(r.train.items())))
    same = [dict(r.eval) for r in suite.rows if r.eval and key(r) == key(row)]
    return sorted(same, key=lambda e: sorted(e.items()))


def _model_key(model: dict[str, Any]) -> tuple:
    options = {k: v for k, v in (model.get("options") or {}).items() if k != "input_size"}
    return (model.get("arch"), model.get("form"), model.get("attention"),
            repr(sorted((k, _plain(v)) for k, v in options.items())))


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def row_signature(suite: Suite, row: Row) -> tuple | None:
    """What a job config must hold to belong to ``row``; None if the row cannot run."""
    if suite.recipe is None or row.arch is None:
        return None
    try:
        spec = model_spec(suite, row).to_dict()
    except (NotAvailableError, ValueError):
        return None
    return (_model_key(spec), suite.recipe.name,
            repr([sorted(e.items()) for e in expected_evals(suite, row)]))


def config_signature(config: dict[str, Any]) -> tuple | None:
    """The signature of a stored job config (see :func:`row_signature`)."""
    if not isinstance(config, dict) or "model" not in config or "train" not in config:
        return None
    evals = sorted((dict(e) for e in config.get("evals") or []), key=lambda e: sorted(e.items()))
    return (_model_key(config["model"]), config["train"].get("recipe"),
            repr([sorted(e.items()) for e in evals]))


def _row_train_ok(row: Row, config: dict[str, Any]) -> bool:
    """Rows with their own batch size (Fig. 5) match only jobs trained at it, unless the
    profile overrode every batch size (smoke)."""
    want = row.train.get("batch_size")
    if want is None or config.get("profile") == "smoke":
        return True
    return config["train"].get("batch_size") == want


def choose_group(jobs: pd.DataFrame) -> tuple[str | None, int]:
    """The group_hash to report (most comparable, then most completed) and how many other
    groups matched."""
    if jobs.empty:
        return None, 0
    ranked = []
    for group, g in jobs.groupby("group_hash", sort=False):
        cfg = g["config"].iloc[0]
        ranked.append((not bool(cfg.get("comparable")),
                       PROFILE_RANK.get(cfg.get("profile"), 9),
                       -int((g["status"] == JobStatus.COMPLETED).sum()), -len(g), str(group)))
    ranked.sort()
    return ranked[0][-1], len(ranked) - 1


# ---------------------------------------------------------------------------- one row
def eval_key(variant: dict[str, Any]) -> str:
    """``{"batch_size": 8}`` -> ``"batch_size=8"`` (the runner's eval keys)."""
    return ",".join(f"{k}={v}" for k, v in sorted(variant.items()))


def _unavailable(suite: Suite, row: Row) -> str | None:
    try:
        check_available(suite, row)
    except NotAvailableError as exc:
        return str(exc)
    return None


def build_row(suite: Suite, row: Row, jobs: pd.DataFrame, evals: pd.DataFrame,
              default_seeds: int) -> RowReport:
    """Judge one row from its matching jobs (a slice of ``ResultsDB.results_frame()``); a row
    with no job at all expects ``default_seeds`` (the paper's runs)."""
    stat = headline_statistic(suite)
    source = f"eval {eval_key(row.eval)}" if row.eval else "best epoch"
    rep = RowReport(suite, row, stat, source, "pending", "")
    why = _unavailable(suite, row)
    if why is not None:
        rep.status, rep.status_text, rep.reason = "unavailable", "unavailable", why
        return rep
    group, rep.other_groups = choose_group(jobs)
    chosen = jobs[jobs["group_hash"] == group] if group is not None else jobs.iloc[0:0]
    done = chosen[chosen["status"] == JobStatus.COMPLETED]
    rep.group_hash = group
    rep.job_ids = [int(j) for j in chosen["job_id"]]
    rep.configs = list(chosen["config"])
    rep.n_expected = len(chosen) if len(chosen) else default_seeds
    rep.n_done, rep.n_failed = len(done), int((chosen["status"] == JobStatus.FAILED).sum())
    if len(chosen):
        cfg = chosen["config"].iloc[0]
        rep.profile, rep.comparable = cfg.get("profile"), bool(cfg.get("comparable"))
        rep.why_not_comparable = "" if rep.comparable else not_comparable_reason(cfg)
    rep.best_top1 = summarize(done["best_top1_err"])
    rep.last_top1 = summarize(done["last_top1_err"])
    if row.eval:
        key = eval_key(row.eval)
        mine = evals[(evals["eval_key"] == key) & evals["job_id"].isin(done["job_id"])]
        rep.top1, rep.top5 = summarize(mine["top1_err"]), summarize(mine["top5_err"])
        if rep.top1.n < rep.n_done:  # evaluation missing: fall back to the training result
            rep.source = f"best epoch (eval {key} missing)"
            rep.top1, rep.top5 = rep.best_top1, summarize(done["best_top5_err"])
    else:
        rep.top1, rep.top5 = rep.best_top1, summarize(done["best_top5_err"])
    _judge(rep)
    return rep


def _judge(rep: RowReport) -> None:
    """Set the status: pending < not comparable < reproduced / differs / no paper value."""
    if rep.n_done < rep.n_expected or rep.n_done == 0:
        failed = f", {rep.n_failed} failed" if rep.n_failed else ""
        rep.status = "pending"
        rep.status_text = f"pending ({rep.n_done}/{rep.n_expected} seeds{failed})"
        return
    if not rep.comparable:
        rep.status = "not comparable"
        rep.status_text = f"not comparable ({rep.why_not_comparable})"
        return
    judged = [m for m in ERROR_METRICS if m in rep.row.paper and m in rep.suite.metrics]
    if not judged:
        rep.status = rep.status_text = "no paper value"
        return
    ok = all(within_rule(rep.reproduced(m), rep.row.paper[m], rep.summary(m).std)
             for m in judged)
    rep.status = rep.status_text = "reproduced" if ok else "differs"


def build_rows(suite: Suite, results: pd.DataFrame, evals: pd.DataFrame) -> list[RowReport]:
    """Every row of ``suite`` from the whole results frame and eval frame of the database."""
    sigs = results["config"].map(config_signature) if len(results) else pd.Series(dtype=object)
    per_row: list[tuple[Row, pd.DataFrame]] = []
    for row in suite.rows:
        sig = row_signature(suite, row)
        if sig is None or not len(results):
            per_row.append((row, results.iloc[0:0]))
            continue
        mask = (sigs == sig) & results["config"].map(lambda c, row=row: _row_train_ok(row, c))
        per_row.append((row, results[mask]))
    return [build_row(suite, row, jobs, evals, suite.seeds) for row, jobs in per_row]


# -------------------------------------------------------------------------------- frames
def _fmt(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def long_frame(rows: Sequence[RowReport]) -> pd.DataFrame:
    """One record per (row, paper metric): the CSV export."""
    out = []
    for r in rows:
        for metric in r.suite.metrics:
            paper = r.row.paper.get(metric, math.nan)
            s = r.summary(metric) if metric in ERROR_METRICS else None
            ours = r.reproduced(metric)
            is_error = metric in ERROR_METRICS
            out.append({
                "table": r.suite.table, "suite": r.suite.name, "backbone": r.row.backbone,
                "method": r.row.method, "setting": r.row.setting, "metric": metric,
                "paper": paper, "reproduced": ours,
                "statistic": (r.statistic if is_error else
                              "std over seeds" if metric == "std" else
                              "counted" if metric in COST_METRICS else ""),
                "reproduced_median": s.median if s else math.nan,
                "mean": s.mean if s else math.nan,
                "std": s.std if s else (r.top1.std if metric == "std" else math.nan),
                "n": s.n if s else (r.n_done if metric == "std" else math.nan),
                "n_expected": r.n_expected,
                "best_epoch_median": (r.best_top1.median if metric in ("err", "top1_err")
                                      else math.nan),
                "last_epoch_median": (r.last_top1.median if metric in ("err", "top1_err")
                                      else math.nan),
                "diff": ours - paper if math.isfinite(ours) and math.isfinite(paper)
                else math.nan,
                "status": r.status_text, "source": r.source if is_error else "",
                "profile": r.profile or "", "comparable": r.comparable,
                "cost_status": r.cost_status if metric in COST_METRICS else "",
                "inferred": r.row.inferred, "reason": r.reason,
            })
    return pd.DataFrame(out)


def display_frame(rows: Sequence[RowReport]) -> pd.DataFrame:
    """The printed table: paper / ours / Δ per paper column, then the error's detail and
    status. Columns are a two-level index (group, sub-column)."""
    if not rows:
        return pd.DataFrame()
    suite = rows[0].suite
    main = error_metric(suite)
    runnable = any(r.status != "unavailable" for r in rows)
    records = []
    for r in rows:
        rec: dict[tuple[str, str], str] = {
            ("Row", "Backbone"): r.row.backbone,
            ("Row", "Method"): r.row.method + (" *" if r.row.inferred else ""),
            ("Row", "Setting"): r.row.setting,
        }
        for metric in suite.metrics:
            label = METRIC_LABELS.get(metric, metric)
            paper = r.row.paper.get(metric)
            ours = r.reproduced(metric)
            rec[(label, "paper")] = "-" if paper is None else _fmt(paper)
            if runnable:
                rec[(label, "ours")] = _fmt(ours)
                rec[(label, "Δ")] = (_fmt(ours - paper, sign=True)
                                     if paper is not None and math.isfinite(ours) else "")
        if main is not None and runnable:
            s = r.top1
            head = f"{METRIC_LABELS[main]} over seeds"
            rec[(head, "median")] = _fmt(s.median)
            rec[(head, "mean ± std")] = (f"{s.mean:.2f} ± {s.std:.2f}" if s.n >= 2 else
                                         _fmt(s.mean))
            rec[(head, "best / last epoch")] = (
                f"{r.best_top1.median:.2f} / {r.last_top1.median:.2f}" if r.best_top1.n else "")
            rec[(head, "n")] = f"{r.n_done}/{r.n_expected}" if r.status != "unavailable" else ""
        if any(x.cost_status for x in rows):
            rec[("Status", "count")] = r.cost_status
        rec[("Status", "status")] = r.status_text
        records.append(rec)
    frame = pd.DataFrame(records)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def rule_text(suite: Suite) -> str:
    """Which statistic the table shows and the reproduced/differs rule."""
    stat = headline_statistic(suite)
    what = ("mean and std over seeds (the paper prints mean error and std)" if stat == "mean"
            else "median over seeds (the paper: median of five runs)")
    return (f"'ours' is the {what} of the best-epoch top-1 error, or of the listed evaluation "
            f"for rows that differ only in evaluation; params/FLOPs are counted at the paper's "
            f"input size (batch 1, multiply-accumulates). Status: {RULE}.")
