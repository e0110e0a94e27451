"""The stored §III-D audit, read back: is a trained BA²M model's test error the same at every
test batch size?

``ba2m-bench audit`` (``harness.execute.audit.run_audit``) evaluates each trained BA²M model
of the suites that declare ``audit`` (§III-D's ``infer-batch``) at every test batch size, BA²M
active (eval mode ``batch``) and deactivated (``identity``), in a shuffled and a class-sorted
test order, and stores each point under the eval key ``audit:mode=M,order=O,batch_size=B``.
:func:`stored_audit` parses those points from the database's eval frame; :func:`audit_summary`
tabulates them.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.store.evalkeys import parse_audit_key

COLUMNS = ("mode", "order", "batch_size", "effective_batch_size", "top1_err", "top5_err",
           "images")


def stored_audit(evals: pd.DataFrame) -> pd.DataFrame:
    """Audit points stored in ``ResultsDB.eval_frame()`` rows, parsed."""
    rows = []
    for e in evals.itertuples(index=False):
        point = parse_audit_key(str(e.eval_key))
        if point is None:
            continue
        extra = e.extra if isinstance(e.extra, dict) else {}
        rows.append({"job_id": int(e.job_id), "seed": int(e.seed), "mode": point.mode,
                     "order": point.order, "batch_size": point.batch_size,
                     "effective_batch_size": extra.get("effective_batch_size",
                                                       point.batch_size),
                     "top1_err": e.top1_err, "top5_err": e.top5_err,
                     "images": extra.get("images")})
    return pd.DataFrame(rows, columns=["job_id", "seed", *COLUMNS])


def audit_summary(points: pd.DataFrame, paper: float | None = None) -> pd.DataFrame:
    """Per (mode, order): mean top-1 error at each batch size, the spread across sizes and
    whether the error is the same at every size (the paper's claim)."""
    if points.empty:
        return pd.DataFrame()
    out = []
    for (mode, order), g in points.groupby(["mode", "order"], sort=False):
        per = g.groupby("batch_size")["top1_err"].mean().sort_index()
        spread = float(per.max() - per.min())
        rec: dict[str, Any] = {"BA²M eval mode": mode, "test order": order}
        rec.update({f"B={b}": f"{v:.2f}" for b, v in per.items()})
        rec["spread (max-min)"] = f"{spread:.2f}"
        rec["same at every size"] = "yes" if math.isclose(spread, 0, abs_tol=1e-9) else "no"
        if paper is not None:
            rec["paper"] = f"{paper:.2f} at every size"
        out.append(rec)
    return pd.DataFrame(out)
