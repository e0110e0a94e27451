"""Audit of §III-D: is a trained BA²M model's test error the same at every test batch size?

The paper: 'we activate the BA²M ... The size of test batch is {1,2,...,256}. All the results
are 21.63%.' :func:`audit_infer_batch` re-evaluates a trained model at each size, with BA²M's
evaluation mode ``batch`` (active: weights from a softmax over the test batch) and
``identity`` (deactivated), over a shuffled and a class-sorted test order (a batch of one
class is the worst case for a batch softmax). :func:`run_audit` stores the results in the
database under eval keys ``audit:mode=M,order=O,batch_size=B``
(:func:`harness.store.evalkeys.audit_key`), which ``harness.report.audit`` reads back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

import suites
from harness.errors import UserError
from harness.store.db import ResultsDB
from harness.store.evalkeys import audit_key
from harness.store.status import JobStatus

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MODES = ("batch", "identity")
ORDERS = ("shuffled", "class-sorted")
COLUMNS = ("mode", "order", "batch_size", "effective_batch_size", "top1_err", "top5_err",
           "images")


def audit_infer_batch(config: dict[str, Any], results_dir: str,
                      batch_sizes: Sequence[int] = BATCH_SIZES,
                      modes: Sequence[str] = MODES, orders: Sequence[str] = ORDERS,
                      data_root: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Top-1/top-5 error (%) of the trained model of ``config`` at each test batch size, in
    each BA²M evaluation mode and test order: one row per (mode, order, batch size).

    Sizes above the validation set are capped at its size (``effective_batch_size``); every
    image is scored inside a full batch (``harness.training.loop.evaluate``).
    """
    from harness.training.checkpoints import load_trained
    from harness.training.loop import evaluate
    from models.modes import eval_mode
    from models.protocols import BatchAware

    model, data = load_trained(config, results_dir, data_root=data_root)
    if not any(isinstance(m, BatchAware) for m in model.modules()):
        raise ValueError("the model has no batch-aware module (BA²M): nothing to audit")
    device = torch.device("cpu")
    cache: dict[tuple[str, str, int], Any] = {}
    rows = []
    for mode in modes:
        with eval_mode(model, mode):
            for order in orders:
                for b in batch_sizes:
                    eff = max(1, min(int(b), data.val_len))
                    key = (mode, order, eff)
                    if key not in cache:
                        loader = data.val_loader(eff, order=order, seed=seed)
                        cache[key] = evaluate(model, loader, device, amp=False)
                    res = cache[key]
                    rows.append({"mode": mode, "order": order, "batch_size": int(b),
                                 "effective_batch_size": eff, "top1_err": res.top1_err,
                                 "top5_err": res.top5_err, "images": res.images})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def audited_suites() -> list[str]:
    """The suites that declare ``audit`` (§III-D's ``infer-batch``)."""
    return [s.name for s in suites.all_suites() if s.audit]


def run_audit(db_url: str | None = None, results_dir: str = "results",
              suite: str | None = None, batch_sizes: Sequence[int] = BATCH_SIZES,
              modes: Sequence[str] = MODES, orders: Sequence[str] = ORDERS,
              data_root: str | None = None) -> pd.DataFrame:
    """Audit every completed BA²M job of ``suite`` (default: of every suite that declares
    ``audit``) and store each point with ``ResultsDB.record_eval``; returns all points with
    ``job_id`` and ``seed``."""
    frames = []
    names = [suite] if suite is not None else audited_suites()
    if not names:
        raise UserError("no suite declares an audit; name one with --suite")
    detection = [n for n in names if n in suites.names() and suites.get(n).task == "detection"]
    if detection:
        raise UserError(f"{detection[0]} is a detection suite; the audit measures "
                        "classification error at each test batch size (a detector tests one "
                        "image at a time); name a classification suite with --suite")
    with ResultsDB(db_url) as db:
        jobs = pd.concat([db.results_frame(n) for n in names], ignore_index=True)
        jobs = jobs[jobs["status"] == JobStatus.COMPLETED].drop_duplicates("job_id")
        for job in jobs.itertuples(index=False):
            if "ba2m" not in str(job.config.get("model", {}).get("attention") or ""):
                continue
            frame = audit_infer_batch(job.config, results_dir, batch_sizes, modes, orders,
                                      data_root=data_root)
            for p in frame.itertuples(index=False):
                db.record_eval(int(job.job_id), audit_key(p.mode, p.order, p.batch_size),
                               p.top1_err, p.top5_err,
                               extra={"effective_batch_size": p.effective_batch_size,
                                      "images": p.images})
            frames.append(frame.assign(job_id=int(job.job_id), seed=int(job.seed)))
    if not frames:
        return pd.DataFrame(columns=["job_id", "seed", *COLUMNS])
    return pd.concat(frames, ignore_index=True)[["job_id", "seed", *COLUMNS]]
