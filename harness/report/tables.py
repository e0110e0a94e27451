"""Suite rows joined with stored results: one :class:`RowReport` per paper row.

A row's jobs are found by content, not by the suite they were run under: a job belongs to a
row when its model (architecture, form, attention and every option; not the class count),
recipe and extra evaluations are the row's. Tables I and XI, or VII 'between' and VIII R=32,
therefore share results. A detection job belongs to a row when its detector (kind, backbone,
attention and its options, sampler, OHEM ranking, classification loss) and recipe are those of
the row's paper job (``harness.plan.detection.row_detector``); its class count, image sizes,
pretrained weights, norm and frozen stages follow from the profile. Of the matching jobs the
report uses one group (one config without the seed): the most comparable profile (paper >
short > mini > smoke), then the one closest to its profile's own job (no --set, --dataset,
--epochs ...), then the most completed seeds.

Every other job the suite ran (``--set``, ``--dataset``, ``--epochs``, another profile: any group
no paper row uses) is a *variant*: :func:`build_variants` gives each group a row of its own,
under the paper row it was expanded from, labelled with what differs from that row's job
(:func:`describe_variant`); its numbers are shown, never judged against the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.errors import UserError
from harness.plan.detection import row_detector
from harness.plan.spec import NotAvailableError, check_available, model_spec
from harness.store.status import JobStatus
from harness.plan.jobs import PROFILES, expand, job_label, not_comparable_reason, parse_set
from harness.plan.overrides import Overrides
from harness.report.stats import (DETECTION_RULE, DETECTION_TOLERANCE_POINTS, RULE,
                                  TOLERANCE_POINTS, Summary, summarize, within_rule)
from suites.base import Row, Suite

#: Profiles from most to least comparable with the paper.
PROFILE_RANK = {"paper": 0, "short": 1, "mini": 2, "smoke": 3}
ERROR_METRICS = ("err", "top1_err", "top5_err")
#: Detection metrics (percent as the paper prints them; higher is better): VOC recall and
#: mAP, COCO box and mask AP. A detection job's result stores them in ``extra["metrics"]``.
DETECTION_METRICS = ("recall", "map", *(f"{ap}_{kind}" for kind in ("bb", "mask")
                                        for ap in ("ap", "ap50", "ap75", "aps", "apm", "apl")))
#: The metrics a row is judged on (against the paper's printed value).
JUDGED_METRICS = ERROR_METRICS + DETECTION_METRICS
#: A detection table's headline column: VOC mAP, COCO box AP, COCO mask AP.
DETECTION_HEADLINES = ("map", "ap_bb", "ap_mask")
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
            "no paper value", "variant")
#: Marks a variant row's backbone in the printed tables (it sits under the row it varies).
VARIANT_MARK = "↳ "


def headline_statistic(suite: Suite) -> str:
    """The statistic over seeds the suite declares: ``"mean"`` for tables printed as mean
    error and std (VII, VIII, IX, XIII) and Fig. 5, else ``"median"`` (the paper: median of
    five runs, best epoch)."""
    return suite.statistic


def error_metric(suite: Suite) -> str | None:
    """The suite's main error column (``err`` or ``top1_err``), None for detection."""
    return next((m for m in ("err", "top1_err") if m in suite.metrics), None)


def main_metric(suite: Suite) -> str | None:
    """The suite's headline column: its main error, or its detection AP (mAP, box AP, mask
    AP); None when it has neither."""
    return error_metric(suite) or next((m for m in DETECTION_HEADLINES if m in suite.metrics),
                                       None)


def higher_is_better(metric: str) -> bool:
    """Detection metrics grow with quality; errors and costs shrink."""
    return metric in DETECTION_METRICS


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
    scores: dict[str, Summary] = field(default_factory=dict)  # detection metric -> runs
    params_m: float | None = None
    flops_g: float | None = None
    cost_status: str = ""
    reason: str = ""
    other_groups: int = 0  # further matching configs not used
    # a variant: jobs of the suite no paper row uses, shown under ``row`` (the row they vary)
    variant: str = ""  # what differs from the row's job, e.g. "smoke profile; --set ..."
    built: str = ""  # what the variant's config builds, e.g. "ResNet-20 / se"

    @property
    def label(self) -> str:
        return self.built or self.row.label

    @property
    def is_variant(self) -> bool:
        return self.status == "variant"

    def summary(self, metric: str) -> Summary:
        """The runs' values of a judged metric (the headline error for any other)."""
        if metric in DETECTION_METRICS:
            return self.scores.get(metric, Summary(()))
        return self.top5 if metric == "top5_err" else self.top1

    def reproduced(self, metric: str) -> float:
        """The headline reproduced value of ``metric`` (NaN when there is none)."""
        if metric in COST_METRICS:
            value = self.params_m if metric == "params_m" else self.flops_g
            return math.nan if value is None else float(value)
        if metric == "std":
            return self.top1.std
        if metric in JUDGED_METRICS:
            return self.summary(metric).stat(self.statistic)
        return math.nan


# ------------------------------------------------------------------------------ matching
def _training_key(r: Row) -> tuple:
    """Rows with the same key share their training (they differ only in evaluation)."""
    return (r.backbone, r.arch, r.method, repr(sorted(r.model.items())),
            repr(sorted(r.train.items())))


def expected_evals(suite: Suite, row: Row) -> list[dict[str, Any]]:
    """The extra evaluations a job of ``row`` carries (as ``harness.plan.jobs`` builds them)."""
    same = [dict(r.eval) for r in suite.rows if r.eval and _training_key(r) == _training_key(row)]
    return sorted(same, key=lambda e: sorted(e.items()))


#: What makes a detection job's model its row's (``DetectorSpec`` fields besides the attention
#: options); the class count, sizes, weights, norm and frozen stages follow from the profile.
DETECTOR_KEYS = ("detector", "arch", "attention", "sampler", "ohem_rank_by", "cls_loss")


def _model_key(model: dict[str, Any]) -> tuple:
    options = {k: v for k, v in (model.get("options") or {}).items() if k != "input_size"}
    shown = repr(sorted((k, _plain(v)) for k, v in options.items()))
    if "detector" in model:
        return ("detection", *(model.get(k) for k in DETECTOR_KEYS), shown)
    return (model.get("arch"), model.get("form"), model.get("attention"), shown)


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def row_model(suite: Suite, row: Row) -> dict[str, Any]:
    """The model section of ``row``'s paper-profile job: a ``ModelSpec``'s or, for a detection
    suite, a ``DetectorSpec``'s."""
    if suite.task == "detection":
        return row_detector(suite, row).to_dict()
    return model_spec(suite, row).to_dict()


def row_signature(suite: Suite, row: Row) -> tuple | None:
    """What a job config must hold to belong to ``row``; None if the row cannot run."""
    if suite.recipe is None or row.arch is None:
        return None
    try:
        spec = row_model(suite, row)
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


def choose_group(jobs: pd.DataFrame,
                 distance: Callable[[dict[str, Any]], int] | None = None) -> tuple[str | None, int]:
    """The group_hash to report and how many other groups matched: the most comparable, then
    (when several groups match and ``distance`` is given) the closest to its profile's own
    job of the row (fewest settings changed by --set, --dataset, --epochs ...), then the most
    completed."""
    if jobs.empty:
        return None, 0
    ranked = []
    groups = list(jobs.groupby("group_hash", sort=False))
    for group, g in groups:
        cfg = g["config"].iloc[0]
        ranked.append((not bool(cfg.get("comparable")),
                       PROFILE_RANK.get(cfg.get("profile"), 9),
                       distance(cfg) if distance is not None and len(groups) > 1 else 0,
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
              default_seeds: int,
              distance: Callable[[dict[str, Any]], int] | None = None) -> RowReport:
    """Judge one row from its matching jobs (a slice of ``ResultsDB.results_frame()``); a row
    with no job at all expects ``default_seeds`` (the paper's runs). ``distance``: see
    :func:`choose_group`."""
    stat = headline_statistic(suite)
    source = f"eval {eval_key(row.eval)}" if row.eval else "best epoch"
    rep = RowReport(suite, row, stat, source, "pending", "")
    why = _unavailable(suite, row)
    if why is not None:
        rep.status, rep.status_text, rep.reason = "unavailable", "unavailable", why
        return rep
    group, rep.other_groups = choose_group(jobs, distance)
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
    if suite.task == "detection":
        rep.source = "final evaluation"
        rep.scores = detection_scores(done, suite.metrics)
    elif row.eval:
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


def detection_scores(done: pd.DataFrame, metrics: Sequence[str]) -> dict[str, Summary]:
    """Each detection metric of ``metrics`` over the completed jobs ``done`` (a results
    frame's slice: the values are in ``extra["metrics"]``). COCOeval's -1 (no object of that
    size in the test set: AP_L of the small shapes set) is no value, never a score of -1."""
    stored = [(e.get("metrics") or {}) if isinstance(e, dict) else {}
              for e in (done["extra"] if "extra" in done else ())]
    return {m: summarize(v for s in stored if (v := s.get(m)) is not None and v >= 0)
            for m in metrics if m in DETECTION_METRICS}


def tolerance(metric: str) -> float:
    """The points by which a run may miss the paper's value of ``metric`` (see
    :data:`~harness.report.stats.RULE` and :data:`~harness.report.stats.DETECTION_RULE`)."""
    return DETECTION_TOLERANCE_POINTS if metric in DETECTION_METRICS else TOLERANCE_POINTS


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
    judged = [m for m in JUDGED_METRICS if m in rep.row.paper and m in rep.suite.metrics]
    if not judged:
        rep.status = rep.status_text = "no paper value"
        return
    missing = [m for m in judged if not math.isfinite(rep.reproduced(m))]
    if missing:
        rep.status = "differs"
        rep.status_text = f"differs (no {', '.join(missing)} stored)"
        return
    ok = all(within_rule(rep.reproduced(m), rep.row.paper[m], rep.summary(m).std, tolerance(m))
             for m in judged)
    rep.status = rep.status_text = "reproduced" if ok else "differs"


def build_rows(suite: Suite, results: pd.DataFrame, evals: pd.DataFrame,
               refs: RowConfigs | None = None) -> list[RowReport]:
    """Every row of ``suite`` from the whole results frame and eval frame of the database
    (``refs``: the rows' own job configs, made here when not given)."""
    refs = refs or RowConfigs(suite)
    sigs = results["config"].map(config_signature) if len(results) else pd.Series(dtype=object)
    per_row: list[tuple[Row, pd.DataFrame]] = []
    for row in suite.rows:
        sig = row_signature(suite, row)
        if sig is None or not len(results):
            per_row.append((row, results.iloc[0:0]))
            continue
        mask = (sigs == sig) & results["config"].map(lambda c, row=row: _row_train_ok(row, c))
        per_row.append((row, results[mask]))
    return [build_row(suite, row, jobs, evals, suite.seeds,
                      lambda cfg, row=row: refs.distance(row, cfg))
            for row, jobs in per_row]


# ------------------------------------------------------------------------------ variants
#: Config keys that follow from others (the class count from the data, the milestones from the
#: epochs, ...): a variant's label does not list them.
DERIVED = {("data", "num_classes"), ("model", "num_classes"), ("train", "milestones"),
           ("train", "pipeline"), ("train", "eval_batch_size"), ("model", "options", "input_size"),
           ("data", "data_root"), ("data", "download")}
#: How a variant's label names a changed setting (others: ``key=value``).
NAMED = {("data", "provider"): "dataset {}", ("train", "epochs"): "{} epochs",
         ("train", "batch_size"): "batch size {}", ("train", "gpus"): "{} GPUs per job",
         ("data", "image_size"): "{}px images", ("data", "train_size"): "{} training images",
         ("data", "val_size"): "{} validation images"}
_ABSENT = object()


def _flatten(value: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(value, dict):
        out: dict[tuple[str, ...], Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, (*prefix, str(k))))
        return out
    return {prefix: _plain(value)}


def _set_paths(config: dict[str, Any]) -> list[tuple[str, ...]]:
    """The config keys the job's ``--set`` values changed."""
    out = []
    for text in config.get("overrides") or []:
        try:
            out.append(parse_set(text).path)
        except UserError:
            continue
    return out


def config_diffs(config: dict[str, Any], ref: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """Keys of the job ``config`` (model, data, train, evals) whose value differs from the
    reference job ``ref``, with the job's value; keys its ``--set`` values changed are left
    out (they are named by the settings themselves)."""
    skip = _set_paths(config)
    mine = _flatten({k: config.get(k) for k in ("model", "data", "train", "evals")})
    theirs = _flatten({k: ref.get(k) for k in ("model", "data", "train", "evals")})
    out = {}
    for key in dict.fromkeys([*mine, *theirs]):
        if any(key[:len(p)] == p for p in skip):
            continue
        value = mine.get(key, _ABSENT)
        if value != theirs.get(key, _ABSENT):
            out[key] = value
    return out


class RowConfigs:
    """Each row's own job config (seed left out) under each profile, as ``ba2m-bench run
    SUITE --profile P`` expands it without other options: what a variant is compared with.
    Expanded once per profile, when first asked."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self._by_profile: dict[str, dict[int, dict[str, Any]]] = {}

    def get(self, row: Row, profile: str | None) -> dict[str, Any] | None:
        """``row``'s job config under ``profile``; None when it cannot be made (a row that
        cannot run, an unknown profile)."""
        if profile not in PROFILES or self.suite.recipe is None:
            return None
        if profile not in self._by_profile:
            self._by_profile[profile] = self._expand(profile)
        return self._by_profile[profile].get(id(row))

    def _expand(self, profile: str) -> dict[int, dict[str, Any]]:
        try:
            jobs = expand(self.suite, PROFILES[profile], Overrides(seeds=1))
        except (UserError, NotAvailableError, ValueError):
            return {}
        by_key = {}
        for job in jobs:
            by_key.setdefault(_training_key(job.row), job.config)
        return {id(row): {k: v for k, v in by_key[_training_key(row)].items() if k != "seed"}
                for row in self.suite.rows if _training_key(row) in by_key}

    def distance(self, row: Row, config: dict[str, Any]) -> int:
        """How many settings of ``config`` differ from ``row``'s own job under its profile
        (keys that follow from others left out; each --set value counts one)."""
        ref = self.get(row, config.get("profile"))
        changed = ([k for k in config_diffs(config, ref) if k not in DERIVED]
                   if ref is not None else [])
        return len(changed) + len(config.get("overrides") or [])


def describe_variant(config: dict[str, Any], ref: dict[str, Any] | None) -> str:
    """What a variant's job config changes from its row's paper job, in a few words: the
    profile (unless paper), settings changed by --dataset, --epochs, --batch-size,
    --gpus-per-job (compared with the row's job under the same profile), then the --set
    values, e.g. "short profile; dataset image-folder (10 classes); --set model.arch=resnet20"."""
    parts = []
    if config.get("profile") != "paper":
        parts.append(f"{config.get('profile')} profile")
    if ref is not None:
        diffs = config_diffs(config, ref)
        for key, value in diffs.items():
            if key in DERIVED or key == ("train", "lr") and ("train", "batch_size") in diffs:
                continue  # follows from another setting (the lr scales with the batch)
            text = NAMED[key].format(value) if key in NAMED else \
                f"{'.'.join(key)}={_show(value)}"
            if key == ("data", "provider") and ("data", "num_classes") in diffs \
                    and diffs[("data", "num_classes")] is not None:
                text += f" ({diffs[('data', 'num_classes')]} classes)"
            parts.append(text)
    if config.get("overrides"):
        parts.append("--set " + ", ".join(config["overrides"]))
    return "; ".join(parts) or "another configuration"


def _show(value: Any) -> str:
    return "none" if value is None or value is _ABSENT else str(value)


def match_row(suite: Suite, config: dict[str, Any], label: str | None,
              refs: RowConfigs) -> Row:
    """The paper row a job was expanded from: the row whose own job (same profile) its config
    differs least from, --set keys aside; then the row its stored label names; then the first
    (as ``expand`` keeps the first of rows that make the same job)."""
    best: tuple[tuple[int, bool, int], Row] | None = None
    for i, row in enumerate(suite.rows):
        if row.arch is None:
            continue
        ref = refs.get(row, config.get("profile"))
        score = len(config_diffs(config, ref)) if ref is not None else 1 << 20
        named = label is not None and label in (row.label, job_label(row, config))
        key = (score, not named, i)
        if best is None or key < best[0]:
            best = (key, row)
    return best[1] if best is not None else suite.rows[0]


def build_variants(suite: Suite, rows: Sequence[RowReport], linked: pd.DataFrame,
                   evals: pd.DataFrame, refs: RowConfigs | None = None) -> list[RowReport]:
    """A row for every group of ``linked`` (the suite's jobs, ``ResultsDB.results_frame(suite)``)
    that none of the paper ``rows`` uses: under the row it varies (:func:`match_row`),
    labelled with what differs (:func:`describe_variant`), with its own numbers over seeds and
    status ``variant``: never judged, no gain. Ordered as the rows, then by profile and label."""
    used = {j for r in rows for j in r.job_ids}
    if linked.empty:
        return []
    rest = linked[~linked["job_id"].isin(used)
                  & linked["config"].map(lambda c: config_signature(c) is not None)]
    if rest.empty:
        return []
    refs = refs or RowConfigs(suite)
    order = {id(r.row): i for i, r in enumerate(rows)}
    out = []
    for _, group in rest.groupby("group_hash", sort=False):
        config, label = group["config"].iloc[0], group["label"].iloc[0]
        row = match_row(suite, config, label, refs)
        rep = build_row(suite, row, group, evals, len(group))
        rep.variant = describe_variant(config, refs.get(row, config.get("profile")))
        rep.built = job_label(row, config)
        pending = rep.status_text if rep.status == "pending" else ""
        rep.status = "variant"
        rep.status_text = f"variant: {pending}" if pending else "variant (not compared)"
        out.append(rep)
    out.sort(key=lambda r: (order.get(id(r.row), len(order)), PROFILE_RANK.get(r.profile or "", 9),
                            r.variant, r.built))
    return out


def with_variants(rows: Sequence[RowReport],
                  variants: Sequence[RowReport] = ()) -> list[RowReport]:
    """The paper rows, each followed by its variants (any variant of no shown row last)."""
    out: list[RowReport] = []
    for r in rows:
        out.append(r)
        out.extend(v for v in variants if v.row is r.row)
    shown = {id(r.row) for r in rows}
    return out + [v for v in variants if id(v.row) not in shown]


def method_label(row: Row) -> str:
    """The method as a table prints it: " *" marks an inferred row, " (added)" a row the
    user added (``run --add-method``; not in the paper)."""
    return row.method + (" *" if row.inferred else "") + (" (added)" if row.added else "")


# -------------------------------------------------------------------------------- frames
def _fmt(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def long_frame(rows: Sequence[RowReport], variants: Sequence[RowReport] = ()) -> pd.DataFrame:
    """One record per (row, paper metric): the CSV export. With ``variants``, each follows its
    paper row (whose backbone, method and setting it keeps) with two more columns: ``variant``
    (what differs) and ``variant_label`` (what it builds); a variant has no paper value, no
    diff and no counted params/FLOPs."""
    out = []
    for r in with_variants(rows, variants):
        for metric in r.suite.metrics:
            paper = math.nan if r.is_variant else r.row.paper.get(metric, math.nan)
            judged = metric in JUDGED_METRICS
            s = r.summary(metric) if judged else None
            ours = r.reproduced(metric)
            out.append({
                "table": r.suite.table, "suite": r.suite.name, "backbone": r.row.backbone,
                "method": r.row.method, "setting": r.row.setting, "metric": metric,
                "paper": paper, "reproduced": ours,
                "statistic": (r.statistic if judged else
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
                "status": r.status_text, "source": r.source if judged else "",
                "profile": r.profile or "", "comparable": r.comparable,
                "cost_status": r.cost_status if metric in COST_METRICS else "",
                "inferred": r.row.inferred, "reason": r.reason,
            })
            if r.row.added:  # a column only in reports with added rows
                out[-1]["added"] = True
            if variants:
                out[-1] |= {"variant": r.variant, "variant_label": r.built}
    return pd.DataFrame(out)


def display_frame(rows: Sequence[RowReport],
                  variants: Sequence[RowReport] = ()) -> pd.DataFrame:
    """The printed table: paper / ours / Δ per paper column, then the error's detail and
    status. Columns are a two-level index (group, sub-column). ``variants`` (see
    :func:`build_variants`) follow the row they vary, marked ``↳`` and named by what they
    build, with a ``Variant`` column saying what differs; their paper and Δ cells stay
    empty."""
    if not rows:
        return pd.DataFrame()
    suite = rows[0].suite
    main = main_metric(suite)
    runnable = any(r.status != "unavailable" for r in rows)
    records = []
    for r in with_variants(rows, variants):
        backbone, method = r.row.backbone, method_label(r.row)
        if r.is_variant:  # "ResNet-20 / se / SETTING": what its config builds
            backbone, _, rest = r.built.partition(" / ")
            backbone, method = VARIANT_MARK + backbone, rest.partition(" / ")[0]
        rec: dict[tuple[str, str], str] = {
            ("Row", "Backbone"): backbone,
            ("Row", "Method"): method,
            ("Row", "Setting"): r.row.setting,
        }
        if variants:
            rec[("Row", "Variant")] = r.variant
        for metric in suite.metrics:
            label = METRIC_LABELS.get(metric, metric)
            paper = None if r.is_variant else r.row.paper.get(metric)
            ours = r.reproduced(metric)
            rec[(label, "paper")] = ("" if r.is_variant else "-" if paper is None
                                     else _fmt(paper))
            if runnable:
                rec[(label, "ours")] = _fmt(ours)
                rec[(label, "Δ")] = (_fmt(ours - paper, sign=True)
                                     if paper is not None and math.isfinite(ours) else "")
        if main is not None and runnable:
            s = r.summary(main)
            head = f"{METRIC_LABELS[main]} over seeds"
            rec[(head, "median")] = _fmt(s.median)
            rec[(head, "mean ± std")] = (f"{s.mean:.2f} ± {s.std:.2f}" if s.n >= 2 else
                                         _fmt(s.mean))
            if main in ERROR_METRICS:  # detection evaluates once, after the last epoch
                rec[(head, "best / last epoch")] = (
                    f"{r.best_top1.median:.2f} / {r.last_top1.median:.2f}"
                    if r.best_top1.n else "")
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
    if suite.task == "detection":
        return (f"'ours' is the {headline_statistic(suite)} over runs of each metric of the "
                "evaluation after the last epoch (percent, higher is better; the paper prints "
                f"one run). Status: {DETECTION_RULE}.")
    stat = headline_statistic(suite)
    what = ("mean and std over seeds (the paper prints mean error and std)" if stat == "mean"
            else "median over seeds (the paper: median of five runs)")
    return (f"'ours' is the {what} of the best-epoch top-1 error, or of the listed evaluation "
            f"for rows that differ only in evaluation; params/FLOPs are counted at the paper's "
            f"input size (batch 1, multiply-accumulates). Status: {RULE}.")
