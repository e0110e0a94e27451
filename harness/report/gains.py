"""Gains of each method row over its baseline row, paper and reproduced, with Welch intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from harness.report.stats import CONFIDENCE, Gain, welch_gain
from harness.report.tables import METRIC_LABELS, RowReport, higher_is_better, main_metric
from suites.base import Row, Suite

GAIN_COLUMNS = ("table", "backbone", "method", "setting", "metric", "paper_gain", "gain",
                "ci_low", "ci_high", "df", "n_method", "n_baseline", "significant", "note")


def baseline_for(suite: Suite, row: Row) -> Row | None:
    """The row's baseline: same table and backbone, method "baseline" (the same setting when
    the backbone has several baselines, e.g. one per detector)."""
    if row.method == "baseline":
        return None
    bases = [r for r in suite.rows if r.method == "baseline" and r.backbone == row.backbone]
    if len(bases) > 1:
        bases = [r for r in bases if r.setting == row.setting]
    return bases[0] if len(bases) == 1 else None


def gain_text(suite: Suite) -> str:
    """What a gain of ``suite`` is, in words."""
    metric = main_metric(suite)
    if metric is not None and higher_is_better(metric):
        return f"method − baseline {METRIC_LABELS.get(metric, metric)}"
    return "baseline − method error"


def _gain(base: RowReport, rep: RowReport, metric: str, confidence: float) -> Gain:
    """The method's gain over the baseline in ``metric``, positive when it helps."""
    if not higher_is_better(metric):
        return welch_gain(base.summary(metric), rep.summary(metric), confidence)
    g = welch_gain(rep.summary(metric), base.summary(metric), confidence)
    return Gain(g.diff, g.low, g.high, g.df, n_method=g.n_baseline, n_baseline=g.n_method)


def gains_frame(rows: Sequence[RowReport], confidence: float = CONFIDENCE) -> pd.DataFrame:
    """The gain in the suite's headline metric of every method row that has a baseline row:
    ``baseline - method`` error, or ``method - baseline`` recall/AP for detection (positive:
    the method helps). The interval is Welch's t on the seeds' means; it needs two completed
    seeds on each side (the detection tables print one run)."""
    if not rows:
        return pd.DataFrame(columns=list(GAIN_COLUMNS))
    suite = rows[0].suite
    metric = main_metric(suite)
    by_row = {id(r.row): r for r in rows}
    out = []
    for rep in rows:
        base_row = baseline_for(suite, rep.row)
        if base_row is None or metric is None:
            continue
        base = by_row[id(base_row)]
        pp, pb = rep.row.paper.get(metric), base_row.paper.get(metric)
        g = _gain(base, rep, metric, confidence)
        if rep.status == "unavailable" or base.status == "unavailable":
            note = "unavailable"
        elif not g.has_interval:
            note = f"needs >= 2 completed seeds each (have {g.n_method} and {g.n_baseline})"
        elif not (rep.comparable and base.comparable):
            note = "not comparable (profile)"
        else:
            note = ""
        out.append({
            "table": suite.table, "backbone": rep.row.backbone,
            "method": rep.row.method + (" (added)" if rep.row.added else ""),
            "setting": rep.row.setting, "metric": metric,
            "paper_gain": ((pp - pb if higher_is_better(metric) else pb - pp)
                           if pp is not None and pb is not None else math.nan),
            "gain": g.diff, "ci_low": g.low, "ci_high": g.high, "df": g.df,
            "n_method": g.n_method, "n_baseline": g.n_baseline,
            "significant": g.significant, "note": note,
        })
    return pd.DataFrame(out, columns=list(GAIN_COLUMNS))


def gains_display(frame: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """The gains table as printed."""
    def num(v: float, sign: bool = True) -> str:
        return "" if v is None or not math.isfinite(v) else (f"{v:+.2f}" if sign else f"{v:.2f}")

    level = f"{round(confidence * 100)}% CI"
    rows = []
    for g in frame.itertuples(index=False):
        sig = {True: "yes", False: "no", None: ""}.get(g.significant, "")
        rows.append({
            "Backbone": g.backbone, "Method": g.method, "Setting": g.setting,
            "Paper gain": num(g.paper_gain), "Our gain (mean)": num(g.gain),
            level: (f"[{g.ci_low:+.2f}, {g.ci_high:+.2f}]" if math.isfinite(g.ci_low) else ""),
            "Significant": sig, "n (method/base)": f"{g.n_method}/{g.n_baseline}",
            "Note": g.note,
        })
    return pd.DataFrame(rows)
