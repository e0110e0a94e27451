"""Statistics over seeds: summaries, the reproduced/differs rule, Welch confidence intervals.

scipy is not a dependency: the Student t distribution is computed here from the regularized
incomplete beta function (continued fraction, as in Numerical Recipes) and inverted by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Tolerance (percentage points) of the reproduced/differs rule, used when the seeds' spread
#: is smaller (or unknown: one seed).
TOLERANCE_POINTS = 0.5
#: Confidence level of the gain intervals.
CONFIDENCE = 0.95

RULE = (
    f"reproduced when |reproduced - paper| <= max(2 x std over seeds, {TOLERANCE_POINTS} "
    "points), otherwise differs; the std is the sample std (ddof=1) of the seeds' errors "
    f"(with one seed only the {TOLERANCE_POINTS}-point tolerance applies)"
)
#: Tolerance (points of recall, mAP or AP) of the rule for detection metrics. The paper prints
#: one run per cell, so there is no spread to scale with. Half a point is the order of a
#: detector's seed-to-seed spread in VOC mAP / COCO AP (a few tenths), the classification
#: rule's one-seed tolerance, and no more than the smallest gain the detection tables claim
#: (0.5 to 1.8 points of mAP/AP): a run at the baseline's level does not pass for the BA²M
#: row's. Every printed metric is judged, the noisier APS/APL too.
DETECTION_TOLERANCE_POINTS = 0.5

DETECTION_RULE = (
    f"reproduced when every printed metric is within max(2 x std over runs, "
    f"{DETECTION_TOLERANCE_POINTS} points) of the paper's, otherwise differs; the paper prints "
    f"one run, so with one run only the {DETECTION_TOLERANCE_POINTS}-point tolerance applies"
)


@dataclass(frozen=True)
class Summary:
    """Errors of one cell over its completed seeds."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return float(np.median(self.values)) if self.values else math.nan

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1); NaN below two seeds."""
        return float(np.std(self.values, ddof=1)) if self.n >= 2 else math.nan

    def stat(self, name: str) -> float:
        """``"median"`` or ``"mean"``."""
        return self.median if name == "median" else self.mean


def summarize(values: Iterable[float | None]) -> Summary:
    """Summary of the finite values given (None and NaN are dropped)."""
    kept = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    return Summary(kept)


def within_rule(reproduced: float, paper: float, std: float,
                tolerance: float = TOLERANCE_POINTS) -> bool:
    """The rule of :data:`RULE` (of :data:`DETECTION_RULE` with its ``tolerance``)."""
    bound = max(2 * std if math.isfinite(std) else 0.0, tolerance)
    return abs(reproduced - paper) <= bound


# ------------------------------------------------------------------- Student t distribution
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) \
        + b * math.log1p(-x)
    front = math.exp(ln)
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (> 0, not necessarily whole) degrees of freedom."""
    if math.isinf(df):
        return 0.5 * (1 + math.erf(t / math.sqrt(2)))
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`t_cdf`, |error| < 1e-10)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


# -------------------------------------------------------------------------------- gains
@dataclass(frozen=True)
class Gain:
    """A method's gain over its baseline (``baseline - method`` error, or ``method -
    baseline`` of a metric where higher is better; positive: the method helps) with a Welch t
    interval."""

    diff: float
    low: float
    high: float
    df: float
    n_method: int
    n_baseline: int

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def significant(self) -> bool | None:
        """The interval excludes zero; None without an interval."""
        if not self.has_interval:
            return None
        return self.low > 0 or self.high < 0


def welch_gain(baseline: Summary, method: Summary, confidence: float = CONFIDENCE) -> Gain:
    """Difference of means ``baseline - method`` and its Welch-Satterthwaite t interval.

    Needs two seeds on each side for an interval (NaN bounds otherwise). With no spread at
    all (every seed equal on both sides) the interval collapses onto the difference.
    """
    diff = baseline.mean - method.mean
    n1, n2 = baseline.n, method.n
    if n1 < 2 or n2 < 2:
        return Gain(diff, math.nan, math.nan, math.nan, n2, n1)
    v1, v2 = baseline.std ** 2 / n1, method.std ** 2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return Gain(diff, diff, diff, math.inf, n2, n1)
    df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    half = t_quantile(0.5 + confidence / 2, df) * se
    return Gain(diff, diff - half, diff + half, df, n2, n1)


def weight_shares(ep: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{module: frame of epoch, max_share_mean, max_share_max} from an epochs frame."""
    if "diagnostics" not in ep:
        return {}
    rows: dict[str, list[dict[str, float]]] = {}
    for epoch, diag in zip(ep["epoch"], ep["diagnostics"]):
        for module, values in (diag or {}).items():
            if "max_share_mean" in values:
                rows.setdefault(module, []).append({"epoch": epoch, **values})
    return {m: pd.DataFrame(r) for m, r in rows.items()}
