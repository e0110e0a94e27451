"""Figures of a report (matplotlib's object API, no pyplot state, so no display is needed).

Each ``*_figure`` function takes report rows or frames and returns a :class:`Figure`;
:func:`declared_figure` draws the figure a suite declares (a :class:`FigureSpec`) with the
function for its kind; :func:`save_figure` writes a figure as PNG and SVG. Paper values are
drawn wherever the paper has them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.paths import inside
from harness.report.stats import weight_shares
from harness.report.tables import METRIC_LABELS, RowReport, error_metric, main_metric
from suites.base import FigureKind, FigureSpec, PaperPoint

PAPER_COLOR, OURS_COLOR = "#1f4e79", "#c55a11"
_TITLE = {"fontsize": 11}


def save_figure(fig: Figure, out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.svg`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, svg = inside(out, f"{stem}.png"), inside(out, f"{stem}.svg")
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(svg, bbox_inches="tight")
    return png, svg


def _new(width: float = 7.0, height: float = 4.2) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _not_comparable_note(fig: Figure, rows: Sequence[RowReport]) -> None:
    reasons = sorted({r.why_not_comparable for r in rows if r.n_done and not r.comparable})
    if reasons:
        fig.suptitle(f"ours: {'; '.join(reasons)} - NOT comparable with the paper",
                     fontsize=9, color="#b00020")


def _number(text: str, key: str) -> float | None:
    m = re.search(rf"{key}=(\d+(?:\.\d+)?)", text)
    return float(m.group(1)) if m else None


def _ours(rows: Sequence[RowReport], metric: str) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array([r.summary(metric).mean for r in rows], dtype=float)
    std = np.array([r.summary(metric).std for r in rows], dtype=float)
    return mean, np.nan_to_num(std)


def _paper(rows: Sequence[RowReport], metric: str) -> tuple[np.ndarray, np.ndarray]:
    val = np.array([r.row.paper.get(metric, math.nan) for r in rows], dtype=float)
    std = np.array([r.row.paper.get("std", math.nan) for r in rows], dtype=float)
    return val, np.nan_to_num(std)


def bars_figure(rows: Sequence[RowReport], title: str, xlabel: str = "") -> Figure:
    """Paper vs reproduced error per row, mean ± std bars (Tables VII, IX, XIII)."""
    metric = error_metric(rows[0].suite) or "err"
    labels = [(r.row.setting.split("=", 1)[-1] or r.row.method) for r in rows]
    x = np.arange(len(rows))
    fig = _new(max(6.0, 0.55 * len(rows) + 2), 4.4)
    ax = fig.add_subplot()
    pv, ps = _paper(rows, metric)
    ov, os_ = _ours(rows, metric)
    w = 0.38
    ax.bar(x - w / 2, pv, w, yerr=ps, capsize=3, color=PAPER_COLOR, label="paper (mean ± std)")
    ax.bar(x + w / 2, np.nan_to_num(ov), w, yerr=os_, capsize=3, color=OURS_COLOR,
           label="ours (mean ± std)")
    ax.set_xticks(x, labels, rotation=45 if len(rows) > 8 else 0, ha="right" if len(rows) > 8
                  else "center")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"test {METRIC_LABELS.get(metric, metric)}")
    finite = np.concatenate([pv[np.isfinite(pv)], ov[np.isfinite(ov)]])
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max() + max(os_.max(), ps.max()))
        ax.set_ylim(max(0.0, lo - 0.15 * (hi - lo + 1) - 1), hi + 0.1 * (hi - lo + 1) + 0.5)
    bottom = ax.get_ylim()[0]
    for i, r in enumerate(rows):
        if not r.n_done:
            ax.text(x[i] + w / 2, bottom, " pending", rotation=90, ha="center", va="bottom",
                    fontsize=7, color="#555")
    ax.set_title(title, **_TITLE)
    fig.legend(fontsize=8, loc="outside lower center", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    _not_comparable_note(fig, rows)
    return fig


def reduction_figure(rows: Sequence[RowReport], title: str) -> Figure:
    """Table VIII: error (left) and params (right) against the reduction ratio R."""
    rs = np.array([r.row.model.get("reduction", _number(r.row.setting, "R")) for r in rows],
                  dtype=float)
    fig = _new(7.0, 4.2)
    ax = fig.add_subplot()
    pv, ps = _paper(rows, "err")
    ov, os_ = _ours(rows, "err")
    ax.errorbar(rs, pv, yerr=ps, marker="o", capsize=3, color=PAPER_COLOR, label="paper err")
    ax.errorbar(rs, ov, yerr=os_, marker="s", capsize=3, color=OURS_COLOR, label="ours err")
    ax.set_xscale("log", base=2)
    ax.set_xticks(rs, [f"{int(v)}" for v in rs])
    ax.set_xlabel("reduction ratio R")
    ax.set_ylabel("test error (%)")
    ax2 = ax.twinx()
    pp = [r.row.paper.get("params_m", math.nan) for r in rows]
    op = [math.nan if r.params_m is None else r.params_m for r in rows]
    ax2.plot(rs, pp, ls="--", marker="^", color=PAPER_COLOR, alpha=0.6, label="paper params")
    ax2.plot(rs, op, ls="--", marker="v", color=OURS_COLOR, alpha=0.6, label="counted params")
    ax2.set_ylabel("params (M)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, fontsize=8, loc="outside lower center", ncol=4)
    ax.set_title(title, **_TITLE)
    ax.grid(alpha=0.3)
    _not_comparable_note(fig, rows)
    return fig


def batch_size_figure(rows: Sequence[RowReport], title: str,
                      reference: PaperPoint | None = None) -> Figure:
    """Fig. 5: test error (mean ± std over seeds) against the batch size N."""
    ns = np.array([r.row.eval.get("batch_size", _number(r.row.setting, "N")) for r in rows],
                  dtype=float)
    fig = _new(7.0, 4.2)
    ax = fig.add_subplot()
    ov, os_ = _ours(rows, "err")
    ax.errorbar(ns, ov, yerr=os_, marker="s", capsize=3, color=OURS_COLOR,
                label="ours (mean ± std)")
    if reference is not None:
        ax.plot([reference.x], [reference.value], marker="*", ms=12, ls="", color=PAPER_COLOR,
                label=reference.label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [f"{int(v)}" for v in ns])
    ax.set_xlabel("batch size N (training and test)")
    ax.set_ylabel("test error (%)")
    if not np.isfinite(ov).any():
        ax.text(0.5, 0.5, "no results yet", transform=ax.transAxes, ha="center", color="gray")
    ax.set_title(title, **_TITLE)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _not_comparable_note(fig, rows)
    return fig


def infer_batch_figure(rows: Sequence[RowReport], audit: pd.DataFrame, title: str) -> Figure:
    """§III-D: top-1 error against the test batch size; the paper claims one value."""
    fig = _new(7.0, 4.2)
    ax = fig.add_subplot()
    bs = np.array([r.row.eval.get("batch_size", 1) for r in rows], dtype=float)
    ov, os_ = _ours(rows, "top1_err")
    paper = [r.row.paper.get("top1_err") for r in rows if "top1_err" in r.row.paper]
    if paper:
        ax.axhline(paper[0], color=PAPER_COLOR, ls="--", label=f"paper ({paper[0]:.2f} everywhere)")
    ax.errorbar(bs, ov, yerr=os_, marker="s", capsize=3, color=OURS_COLOR,
                label="ours, training-time eval")
    styles = {"batch": "-", "identity": ":"}
    for (mode, order), g in audit.groupby(["mode", "order"], sort=True) if len(audit) else []:
        per = g.groupby("batch_size")["top1_err"].mean().sort_index()
        ax.plot(per.index, per.values, ls=styles.get(mode, "-."), marker=".",
                label=f"audit: {mode}, {order}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(bs, [f"{int(v)}" for v in bs])
    ax.set_xlabel("test batch size")
    ax.set_ylabel("top-1 error (%)")
    ax.set_title(title, **_TITLE)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _not_comparable_note(fig, rows)
    return fig


#: The drawing of each declared figure kind: (spec, full title, rows, audit points) -> Figure.
DRAWERS: dict[FigureKind, Callable[[FigureSpec, str, Sequence[RowReport], pd.DataFrame],
                                   Figure]] = {
    FigureKind.BATCH_SIZE: lambda spec, title, rows, _: batch_size_figure(rows, title,
                                                                          spec.reference),
    FigureKind.REDUCTION: lambda spec, title, rows, _: reduction_figure(rows, title),
    FigureKind.BARS: lambda spec, title, rows, _: bars_figure(rows, title, spec.xlabel),
    FigureKind.TEST_BATCH: lambda spec, title, rows, audit: infer_batch_figure(rows, audit,
                                                                               title),
}


def declared_figure(spec: FigureSpec, title: str, rows: Sequence[RowReport],
                    audit: pd.DataFrame) -> Figure:
    """The figure a suite declares, titled ``title``, from its rows (and audit points)."""
    return DRAWERS[spec.kind](spec, title, rows, audit)


def scatter_figure(rows: Sequence[RowReport], title: str) -> Figure:
    """Paper vs reproduced headline metric (error, or mAP/AP for detection), one point per
    row with both; the diagonal is agreement."""
    metric = main_metric(rows[0].suite) or "err"
    pts = [(r.row.paper[metric], r.reproduced(metric), r.label) for r in rows
           if metric in r.row.paper and math.isfinite(r.reproduced(metric))]
    fig = _new(5.6, 5.0)
    ax = fig.add_subplot()
    if pts:
        px, oy, names = zip(*pts)
        ax.scatter(px, oy, color=OURS_COLOR, zorder=3)
        for x, y, n in zip(px, oy, names):
            ax.annotate(n, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        lo, hi = min(px + oy), max(px + oy)
        ax.plot([lo, hi], [lo, hi], color="gray", ls="--", lw=1, label="reproduced = paper")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no reproduced values yet", ha="center", transform=ax.transAxes)
    label = METRIC_LABELS.get(metric, metric)
    ax.set_xlabel(f"paper {label}")
    ax.set_ylabel(f"reproduced {label}")
    ax.set_title(title, **_TITLE)
    ax.grid(alpha=0.3)
    _not_comparable_note(fig, rows)
    return fig


def training_curves_figure(curves: Mapping[str, pd.DataFrame], title: str) -> Figure:
    """Loss, top-1 error and learning rate against the epoch, one line per job."""
    fig = _new(11.0, 3.6)
    axes = fig.subplots(1, 3)
    for label, ep in curves.items():
        if ep.empty:
            continue
        line = axes[0].plot(ep["epoch"], ep["train_loss"], marker=".", label=f"{label} train")[0]
        if ep["val_loss"].notna().any():
            axes[0].plot(ep["epoch"], ep["val_loss"], ls="--", marker=".",
                         color=line.get_color())
        axes[1].plot(ep["epoch"], ep["top1_err"], marker=".", color=line.get_color(),
                     label=label)
        if ep["train_err"].notna().any():
            axes[1].plot(ep["epoch"], ep["train_err"], ls=":", color=line.get_color())
        axes[2].plot(ep["epoch"], ep["lr"], marker=".", color=line.get_color())
    for ax, (name, unit) in zip(axes, (("loss (train —, val --)", ""),
                                       ("top-1 error (val —, train ··)", " (%)"),
                                       ("learning rate", ""))):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name + unit)
        ax.grid(alpha=0.3)
    if curves:
        axes[1].legend(fontsize=6)
    fig.suptitle(title, fontsize=11)
    return fig


def weight_share_figure(curves: Mapping[str, pd.DataFrame], title: str) -> Figure:
    """BA²M's collapse diagnostic: per module, the mean over an epoch's steps of the largest
    share of one sample's weight in its batch (1/N is an even batch, 1 a collapsed one)."""
    fig = _new(7.0, 3.8)
    ax = fig.subplots()
    for label, ep in curves.items():
        for module, points in weight_shares(ep).items():
            ax.plot(points["epoch"], points["max_share_mean"], marker=".",
                    label=f"{label}: {module}")
    ax.axhline(0.5, color="grey", ls=":", lw=0.8, label="collapsed above (0.5)")
    ax.set_yscale("log")
    ax.set_ylim(top=1.05)
    ax.set_xlabel("epoch")
    ax.set_ylabel("largest share of one sample's weight")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=11)
    return fig

