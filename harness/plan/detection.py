"""Detection suite -> jobs (Tables III, IV, XIV-XVI): one job per row and seed.

A detection job's config has the sections of a classification job, and ``"task":
"detection"``: ``model`` is a :class:`~harness.plan.detector.DetectorSpec`; ``data`` names the
dataset (``voc0712``, ``coco``, or ``shapes``: the seeded offline set written out for the
suite's loader); ``train`` is the suite's :class:`~suites.base.DetectionRecipe` under the
profile. docs/detection.md describes every key.

Profiles: ``paper``, ``short`` and ``mini`` train on the real data from an ImageNet backbone
(MMDetection's BatchNorm in eval mode, stem and stage 1 frozen), the backbone of Table V's job
of the same profile, architecture, attention and options (``model.pretrained =
"job:<hash>"``: the runner wants it COMPLETED first); ``--set model.pretrained=PATH`` names a
torchvision-format ResNet state dict instead, ``none`` trains from scratch. ``smoke`` trains
from scratch on the shapes set at :data:`SMOKE_IMAGE_SIZE` pixels.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from harness.errors import UserError
from harness.plan.available import NotAvailableError, check_available
from harness.plan.classification import classification_jobs
from harness.plan.detector import JOB_PREFIX, NO_WEIGHTS, DetectorSpec
from harness.plan.job import Job
from harness.plan.overrides import Overrides, apply_sets, matches, parse_only, parse_set
from harness.plan.profiles import PROFILES, Profile
from harness.plan.spec import stable_hash
from models.registry import ModelConfigError, resolved_options
from suites.base import DetectionRecipe, Row, Suite

#: Classes of each detection dataset, the background included (COCO: labels are category
#: ids 1..90, as torchvision's COCO loader gives them; shapes: square, disc, triangle).
DETECTION_CLASSES = {"voc0712": 21, "coco": 91, "shapes": 4}
#: The loader each suite dataset is read through (the shapes set is written for it).
FORMATS = {"voc0712": "voc", "coco": "coco"}
#: The suite whose ImageNet jobs pretrain the detection backbones (ResNet-50/101 ± BA²M).
PRETRAIN_SUITE = "table5"
#: Image size of the shapes set the smoke profile trains and evaluates on.
SMOKE_IMAGE_SIZE = 96


def row_detector(suite: Suite, row: Row, prof: Profile = PROFILES["paper"]) -> DetectorSpec:
    """The detector a job of ``row`` builds under ``prof`` (the paper's by default)."""
    recipe = _recipe(suite)
    attention = row.attention
    model = dict(row.model)
    detector = model.pop("detector")
    try:
        options = resolved_options(row.arch, "imagenet", attention, {})  # type: ignore[arg-type]
    except ModelConfigError:
        options = {}  # an unknown method: check_available says what is missing
    if prof.synthetic:
        size = SMOKE_IMAGE_SIZE
        return DetectorSpec(detector=detector, arch=row.arch, attention=attention,  # type: ignore[arg-type]
                            options=options, num_classes=DETECTION_CLASSES["shapes"],
                            norm="train", frozen_stages=0, min_size=size, max_size=size,
                            pretrained=NO_WEIGHTS, **model)
    long, short = recipe.scale
    return DetectorSpec(detector=detector, arch=row.arch, attention=attention,  # type: ignore[arg-type]
                        options=options, num_classes=DETECTION_CLASSES[suite.dataset],
                        min_size=short, max_size=long, **model)


def detection_jobs(suite: Suite, prof: Profile, over: Overrides) -> list[Job]:
    """Every job of the detection ``suite`` under ``prof`` (see ``harness.plan.jobs.expand``)."""
    if over.gpus_per_job and over.gpus_per_job > 1:
        raise UserError(f"{suite.name}: a detection job runs in one process (its 8-GPU step is "
                        "2-image micro-batches, docs/detection.md); drop --gpus-per-job")
    rows = [r for r in suite.rows if matches(r, parse_only(over.only))]
    if not rows:
        raise UserError(f"--only {over.only!r} matches no row of {suite.name}; see `ba2m-bench "
                        f"paper --table {suite.name}` for its backbones, methods and settings")
    seeds = over.seeds or prof.seeds or suite.seeds
    return [_job(suite, row, seed, prof, over) for row in rows for seed in range(seeds)]


def _recipe(suite: Suite) -> DetectionRecipe:
    if not isinstance(suite.recipe, DetectionRecipe):
        raise UserError(f"{suite.name} is a detection suite without a DetectionRecipe")
    return suite.recipe


def _data(suite: Suite, prof: Profile, over: Overrides, masks: bool) -> dict[str, Any]:
    provider = over.dataset or ("shapes" if prof.synthetic else suite.dataset)
    if provider not in DETECTION_CLASSES:
        raise UserError(f"--dataset {provider}: {suite.name} trains a detector; choose one of "
                        f"{', '.join(DETECTION_CLASSES)}")
    data: dict[str, Any] = {"provider": provider, "masks": masks}
    if provider == "shapes":
        data |= {"format": FORMATS[suite.dataset], "image_size": SMOKE_IMAGE_SIZE}
    for key in ("train_size", "val_size"):
        if getattr(prof, key) is not None:
            data[key] = getattr(prof, key)
    return data


def _train(recipe: DetectionRecipe, prof: Profile, over: Overrides) -> dict[str, Any]:
    epochs = over.epochs or prof.epochs or max(1, round(recipe.epochs * prof.epoch_fraction))
    scale = epochs / recipe.epochs
    batch = over.batch_size or prof.batch_size or recipe.batch_size
    per_gpu = min(recipe.images_per_gpu, batch)
    if batch % per_gpu:
        raise UserError(f"batch size {batch} does not split into {per_gpu}-image micro-batches; "
                        f"choose a --batch-size divisible by {per_gpu}")
    return {
        "recipe": recipe.name,
        "epochs": epochs,
        "batch_size": batch,
        "images_per_gpu": per_gpu,
        "lr": recipe.scaled_lr(batch),
        "momentum": recipe.momentum,
        "weight_decay": recipe.weight_decay,
        "milestones": sorted({round(m * scale) for m in recipe.milestones} & set(range(1, epochs))),
        "gamma": recipe.gamma,
        "warmup_iters": recipe.warmup_iters,
        "warmup_ratio": recipe.warmup_ratio,
        "grad_clip": recipe.grad_clip,
        "flip": recipe.flip,
    }


def _job(suite: Suite, row: Row, seed: int, prof: Profile, over: Overrides) -> Job:
    try:
        check_available(suite, row)
        unavailable = None
    except NotAvailableError as exc:
        unavailable = str(exc)
    recipe = _recipe(suite)
    spec = row_detector(suite, row, prof)
    if unavailable is None and not prof.synthetic:
        spec = _with_pretrained(spec, prof.name, row.label)
    data = _data(suite, prof, over, masks=spec.detector == "mask_rcnn")
    config: dict[str, Any] = {"task": "detection", "model": spec.to_dict(), "data": data,
                              "train": _train(recipe, prof, over), "evals": [],
                              "profile": prof.name}
    paper = PROFILES["paper"]
    config["comparable"] = (prof.comparable
                            and data == _data(suite, paper, Overrides(), data["masks"])
                            and config["train"] == _train(recipe, paper, Overrides()))
    applied = apply_sets(config, row, [parse_set(t) for t in over.sets])
    if applied:  # another experiment than the paper's row: its own identity, not comparable
        config |= {"overrides": applied, "comparable": False}
        _follow_sets(config, spec, prof, applied, row.label)
    group = stable_hash(config)
    return Job(suite.name, row, seed, {**config, "seed": seed},
               stable_hash({**config, "seed": seed}), group, unavailable)


def _with_pretrained(spec: DetectorSpec, profile: str, label: str) -> DetectorSpec:
    job = pretrain_job(spec.arch, spec.attention, spec.options, profile)
    if job is None:
        raise UserError(
            f"{label}: no {PRETRAIN_SUITE} job trains an ImageNet {spec.arch} / "
            f"{spec.attention or 'baseline'} backbone with these options; --set "
            "model.pretrained=PATH (a torchvision-format ResNet state dict) or "
            "model.pretrained=none")
    return DetectorSpec(**{**spec.to_dict(), "pretrained": JOB_PREFIX + job})


def pretrain_job(arch: str, attention: str | None, options: dict[str, Any],
                 profile: str) -> str | None:
    """The config hash of the seed-0 job of :data:`PRETRAIN_SUITE` under ``profile`` whose
    ImageNet network has this backbone, attention and options (None: no such job)."""
    key = stable_hash([arch, attention, options])
    return _pretrain_jobs(profile).get(key)


@cache
def _pretrain_jobs(profile: str) -> dict[str, str]:
    import suites

    out: dict[str, str] = {}
    prof = PROFILES[profile]
    for job in classification_jobs(suites.get(PRETRAIN_SUITE), prof, Overrides(seeds=1)):
        if job.unavailable is None and job.seed == 0:
            m = job.config["model"]
            out.setdefault(stable_hash([m["arch"], m["attention"], m["options"]]),
                           job.config_hash)
    return out


def _follow_sets(config: dict[str, Any], row_spec: DetectorSpec, prof: Profile,
                 applied: list[str], label: str) -> None:
    """After ``--set``: a backbone, attention or option change moves a job-pretrained model to
    the ImageNet job of the new backbone (unless the pretrained source was set too), and the
    model must build."""
    model = config["model"]
    moved = any(model[k] != getattr(row_spec, k) for k in ("arch", "attention", "options"))
    if moved and model["pretrained"] == row_spec.pretrained and row_spec.pretrained_job:
        model["pretrained"] = _with_pretrained(DetectorSpec(**model), prof.name,
                                               label).pretrained
    try:
        DetectorSpec(**model).check()
    except (ValueError, TypeError) as exc:
        raise UserError(f"--set {' '.join(applied)}: {label}: "
                        f"{str(exc).splitlines()[0]}") from None
