"""Where a table's numbers come from: profile, data, epochs, seeds, hardware, code, options."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from harness.report.tables import RowReport

NOT_COMPARABLE = (
    "NOT COMPARABLE WITH THE PAPER: results from {reasons}; they are shown but not judged "
    "against the paper's values."
)


def _join(values: Iterable[Any], empty: str = "none") -> str:
    kept = sorted({str(v) for v in values if v is not None and v == v and str(v) != ""})
    return ", ".join(kept) if kept else empty


def _data_text(cfg: dict[str, Any]) -> str:
    d = cfg.get("data", {})
    parts = [d.get("provider", "?")]
    for key in ("image_size", "num_classes", "train_size", "val_size"):
        if d.get(key) is not None:
            parts.append(f"{key}={d[key]}")
    return " ".join(str(p) for p in parts)


def _batch_text(train: dict[str, Any]) -> str:
    return " / ".join(str(train.get(k, "-")) for k in ("batch_size", "eval_batch_size"))


#: The settings of a detection job's model that its row does not fix (the profile does).
DETECTOR_SETTINGS = ("norm", "frozen_stages", "fpn_channels", "min_size", "max_size",
                     "pretrained")


def detector_text(model: dict[str, Any]) -> str:
    """A detection job's detector and the settings its profile chose, e.g. "faster_rcnn
    (sampler=ohem, ohem_rank_by=cls): norm=eval, frozen_stages=1, ..."."""
    kind = model.get("detector", "?")
    how = ([f"cls_loss={model.get('cls_loss')}"] if kind == "retinanet" else
           [f"sampler={model.get('sampler')}"]
           + ([f"ohem_rank_by={model.get('ohem_rank_by')}"] if model.get("sampler") == "ohem"
              else []))
    rest = ", ".join(f"{k}={model[k]}" for k in DETECTOR_SETTINGS if k in model)
    return f"{kind} ({', '.join(how)}): {rest}"


def ba2m_options(configs: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Options shared by every BA²M model used, and the names of those that vary by row."""
    opts = [c["model"].get("options", {}) for c in configs
            if "ba2m" in str(c.get("model", {}).get("attention") or "")]
    if not opts:
        return {}, []
    keys = sorted(set().union(*opts))
    common, varying = {}, []
    for k in keys:
        seen = {json.dumps(o.get(k), sort_keys=True) for o in opts}
        if len(seen) == 1:
            common[k] = opts[0].get(k)
        else:
            varying.append(k)
    return common, varying


#: The options that decide what BA²M's batch weights do (docs/ba2m-options.md).
READING_KEYS = ("excite", "batch_scale", "sar_norm", "eval_mode")


def ba2m_reading(configs: Sequence[dict[str, Any]]) -> str:
    """The readings of Eqs. 11 and 13 the BA²M models used, e.g. "excite=residual
    (departs from Eq. 13), batch_scale=none, ...", one per distinct reading."""
    seen = []
    for c in configs:
        model = c.get("model", {})
        if "ba2m" not in str(model.get("attention") or ""):
            continue
        o = model.get("options", {})
        text = ", ".join(f"{k}={o[k]}" for k in READING_KEYS if k in o)
        if o.get("excite") == "residual":
            text = text.replace("excite=residual", "excite=residual (x + w·x; departs from Eq. 13)")
        if text and text not in seen:
            seen.append(text)
    return "; ".join(seen)


def provenance(rows: Sequence[RowReport], attempts: pd.DataFrame) -> dict[str, str]:
    """Printable facts about the jobs behind ``rows`` (``attempts``: all attempts)."""
    configs = [c for r in rows for c in r.configs]
    job_ids = {j for r in rows for j in r.job_ids}
    if not configs:
        return {"results": "none yet"}
    mine = attempts[attempts["job_id"].isin(job_ids)] if len(attempts) else attempts
    profiles = _join(c.get("profile") for c in configs)
    commits = []
    if len(mine):
        for commit, dirty in mine[["git_commit", "git_dirty"]].drop_duplicates().itertuples(
                index=False):
            if commit:
                commits.append(f"{str(commit)[:12]}{' (dirty)' if dirty else ''}")
    gpus = mine["gpu_name"].fillna("CPU").tolist() if len(mine) else []
    common, varying = ba2m_options(configs)
    out = {
        "profile": profiles,
        "comparable with the paper": "yes" if all(c.get("comparable") for c in configs)
        else "NO",
        "dataset / provider": _join(_data_text(c) for c in configs),
        "epochs": _join(c.get("train", {}).get("epochs") for c in configs),
        "recipe": _join(c.get("train", {}).get("recipe") for c in configs),
        "batch size (train / eval)": _join(_batch_text(c["train"]) for c in configs
                                           if "train" in c),
        "seeds": _join(c.get("seed") for c in configs),
        "hardware": _join(f"{h or '?'} / {g}" for h, g in
                          zip(mine["host"].tolist() if len(mine) else [], gpus)),
        "torch": _join(mine["torch_version"] if len(mine) else []),
        "CUDA": _join(mine["cuda_version"] if len(mine) else [], "none (CPU)"),
        "code version": ", ".join(sorted(set(commits))) or "unknown",
    }
    detectors = [detector_text(c["model"]) for c in configs if "detector" in c.get("model", {})]
    if detectors:
        out["detectors"] = "; ".join(dict.fromkeys(detectors))
    if reading := ba2m_reading(configs):
        out["BA²M reading"] = reading
    if common or varying:
        out["BA²M options"] = ", ".join(f"{k}={v}" for k, v in common.items())
        if varying:
            out["BA²M options varying by row"] = ", ".join(varying)
    return out


def not_comparable_banner(rows: Sequence[RowReport]) -> str | None:
    """The warning for tables with results that are not comparable (smoke/short profiles,
    overrides), None if every result is."""
    reasons = {r.why_not_comparable for r in rows if r.n_done and not r.comparable}
    if not reasons:
        return None
    return NOT_COMPARABLE.format(reasons="; ".join(sorted(reasons)))
