"""Classification suite -> jobs: architecture x method x setting x seed, each a resolved,
hashed config (``harness.plan.jobs.expand`` dispatches here by the suite's task).

A job's config says everything that decides its numbers: model (every BA²M option in force),
data (provider, sizes; not where the files live), training recipe, evaluations and seed. Its
``config_hash`` is its identity across suites (Tables I and XI share jobs); its
``group_hash`` is the same config without the seed (one table cell).

A model is built for the images its job trains and evaluates at (:func:`input_size`, from the
data config). Most models are the same at every size; one whose modules depend on the
feature-map size (GE-θ, AA: ``models.registry.size_dependent``) records the size as
``model.options.input_size`` where it is not the paper's for the form, so jobs at the paper's
size keep their identity and the others are new models with their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from harness.errors import UserError
from harness.plan.job import Job
from harness.plan.overrides import Overrides, Setting, apply_sets, matches, parse_only, parse_set
from harness.plan.spec import (DATASET_CLASSES, ModelSpec, NotAvailableError, check_available,
                               model_spec, plugins_of, stable_hash)
from harness.plan.profiles import PROFILES, Profile
from models.registry import INPUT_SIZE, ModelConfigError, size_dependent
from suites.base import Recipe, Row, Suite

#: ``DATASET_CLASSES`` (``harness.plan.spec``): classes of each real dataset (the synthetic
#: provider makes ``SMOKE_CLASSES``). Any other provider (image-folder) has the classes of its
#: data: ``expand``'s ``count_classes`` reads them, and the job's config records them
#: (``data.num_classes`` and ``model.num_classes``).
SMOKE_CLASSES = 10

#: Opens the data a data config names (where the files live is the caller's) and returns
#: its number of classes.
ClassCounter = Callable[[dict[str, Any]], int]

#: Image size of a provider whose data config names none (``harness.training.data``'s defaults,
#: tests/test_every_row.py checks they agree): ImageNet 224, every other provider 32.
PROVIDER_IMAGE_SIZE = {"imagenet": 224}
DEFAULT_IMAGE_SIZE = 32


def classification_jobs(suite: Suite, prof: Profile, over: Overrides, *,
                        count_classes: ClassCounter | None = None) -> list[Job]:
    """Every job of the classification ``suite`` under ``prof``; rows differing only in
    ``eval`` share a job.

    ``count_classes`` gives the class count of data whose provider does not fix one
    (image-folder), asked once per provider; without it such jobs record ``None`` (the
    data's count, unknown until opened)."""
    filters = parse_only(over.only)
    rows = [r for r in suite.rows if matches(r, filters)]
    if not rows:
        raise UserError(
            f"--only {over.only!r} matches no row of {suite.name}; see `ba2m-bench paper "
            f"--table {suite.name}` for its backbones, methods and settings"
        )
    seeds = over.seeds or prof.seeds or suite.seeds
    settings = [parse_set(t) for t in over.sets]
    counted: dict[str, int] = {}

    def classes(data: dict[str, Any]) -> int | None:
        if count_classes is None:
            return None
        if data["provider"] not in counted:
            counted[data["provider"]] = count_classes(data)
        return counted[data["provider"]]

    jobs: dict[str, Job] = {}
    for row in rows:
        for seed in range(seeds):
            job = _job(suite, row, seed, prof, over, _evals(suite, row), settings, classes)
            jobs.setdefault(job.config_hash, job)
    return list(jobs.values())


def _evals(suite: Suite, row: Row) -> list[dict[str, Any]]:
    """Extra evaluations of rows that share this row's training (e.g. §III-D batch sizes)."""
    same = [r.eval for r in suite.rows if r.eval and _training_key(r) == _training_key(row)]
    return sorted((dict(e) for e in same), key=lambda e: sorted(e.items()))


def _training_key(row: Row) -> tuple:
    return (row.backbone, row.arch, row.method, repr(sorted(row.model.items())),
            repr(sorted(row.train.items())))


def _data_config(suite: Suite, prof: Profile, over: Overrides) -> dict[str, Any]:
    provider = over.dataset or ("synthetic" if prof.synthetic else suite.dataset)
    data: dict[str, Any] = {"provider": provider}
    if prof.image_size:
        data["image_size"] = prof.image_size[suite.form]
    if provider == "synthetic":
        data["num_classes"] = SMOKE_CLASSES
    for key in ("train_size", "val_size"):
        if getattr(prof, key) is not None:
            data[key] = getattr(prof, key)
    return data


#: Providers whose training set the on-device pipeline can hold (harness.training.devicedata).
DEVICE_PIPELINE_PROVIDERS = ("cifar100", "cifar10")


def _train_config(recipe: Recipe, row: Row, prof: Profile, over: Overrides,
                  provider: str) -> dict[str, Any]:
    epochs = over.epochs or prof.epochs or max(1, round(recipe.epochs * prof.epoch_fraction))
    scale = epochs / recipe.epochs
    batch = over.batch_size or prof.batch_size or row.train.get("batch_size", recipe.batch_size)
    lr = row.train.get("lr", recipe.scaled_lr(batch))
    if over.batch_size or prof.batch_size:
        lr = recipe.scaled_lr(batch)
    gpus = next(g for g in (over.gpus_per_job, prof.gpus, recipe.gpus) if g is not None)
    out = {
        "recipe": recipe.name,
        "epochs": epochs,
        "batch_size": batch,
        "lr": lr,
        "momentum": recipe.momentum,
        "weight_decay": recipe.weight_decay,
        "nesterov": recipe.nesterov,
        "milestones": sorted({round(m * scale) for m in recipe.milestones} & set(range(1, epochs))),
        "gamma": recipe.gamma,
        "augment": recipe.augment,
        "eval_batch_size": batch,  # BA²M weighs the evaluation batch as it did in training
        "pipeline": "device" if recipe.augment == "crop-flip"
        and provider in DEVICE_PIPELINE_PROVIDERS else "loader",
    }
    if gpus > 1:  # one process writes no key, so single-device jobs keep their identity
        out["gpus"] = gpus  # data-parallel processes; batch_size stays the global batch
    return out


def _job(suite: Suite, row: Row, seed: int, prof: Profile, over: Overrides,
         evals: list[dict[str, Any]], settings: list[Setting] = (),  # type: ignore[assignment]
         count_classes: Callable[[dict[str, Any]], int | None] = lambda data: None) -> Job:
    data = _data_config(suite, prof, over)
    classes = data.get("num_classes") or DATASET_CLASSES.get(data["provider"])
    try:
        check_available(suite, row)
        unavailable = None
    except NotAvailableError as exc:
        unavailable = str(exc)
    spec: ModelSpec = model_spec(suite, row, num_classes=classes)
    train = _train_config(suite.recipe, row, prof, over, data["provider"])  # type: ignore[arg-type]
    # comparable with the paper: its profile, and its row's data and training (a --dataset,
    # --epochs, --batch-size or --gpus-per-job that changes them makes another experiment)
    paper, plain = PROFILES["paper"], Overrides()
    paper_data = _data_config(suite, paper, plain)
    paper_train = _train_config(suite.recipe, row, paper, plain,  # type: ignore[arg-type]
                                paper_data["provider"])
    config = {
        "model": spec.to_dict(),
        "data": data,
        "train": train,
        "evals": evals,
        "profile": prof.name,
        "comparable": prof.comparable and data == paper_data and train == paper_train,
    }
    applied = apply_sets(config, row, list(settings))
    _record_plugins(config["model"])
    _record_classes(config, count_classes)
    _check_split(config["train"], applied)
    if applied:  # another experiment than the paper's row: its own identity, not comparable
        config |= {"overrides": applied, "comparable": False}
        _check_numbers(config, applied)
    if unavailable is None:
        sized = _size_model(config, applied)
        if applied and any(t.path[0] == "model" or t.path[:2] in (("data", "image_size"),
                           ("data", "provider")) for t in settings if t.text in applied):
            _check_model(config["model"], f"--set {' '.join(applied)}: {row.label}")
        elif sized:  # a model built for other images than the paper's (profile or --dataset)
            _check_model(config["model"], f"{row.label} at {input_size(config)}x"
                                          f"{input_size(config)}")
    group = stable_hash(config)
    config_hash = stable_hash({**config, "seed": seed})
    return Job(suite.name, row, seed, {**config, "seed": seed}, config_hash, group, unavailable)


def _record_plugins(model: dict[str, Any]) -> None:
    """A model that builds a plugin backbone or method (its row's, or a ``--set
    model.arch``/``model.attention``) records each plugin (``model.plugins``); a model of
    built-in parts has no such key."""
    records = plugins_of(model.get("attention"), model.get("arch"), model.get("form"))
    if records:
        model["plugins"] = records
    else:
        model.pop("plugins", None)


def _record_classes(config: dict[str, Any],
                    count_classes: Callable[[dict[str, Any]], int | None]) -> None:
    """A provider without a fixed class count (image-folder) gets its data's: recorded as
    ``data.num_classes`` (checked when the data is opened) and ``model.num_classes`` (the
    head), so a folder of other classes makes other jobs. Other providers are untouched."""
    data = config["data"]
    if data.get("num_classes") is not None or data["provider"] in DATASET_CLASSES:
        return
    count = count_classes(data)
    if count is not None:
        data["num_classes"] = count
    config["model"]["num_classes"] = count


def not_comparable_reason(config: dict[str, Any]) -> str:
    """Why a job config marked not comparable (see :func:`_job`) is not, in a few words."""
    if config.get("profile") != "paper":
        return f"{config.get('profile')} profile"
    if config.get("overrides"):
        return "--set " + ", ".join(config["overrides"])
    return "trained otherwise than the paper's row: --dataset, --epochs, --batch-size or " \
           "--gpus-per-job"


#: Config numbers that must stay positive whatever --set says.
POSITIVE = {"train": ("epochs", "batch_size", "eval_batch_size", "lr"),
            "data": ("image_size", "num_classes", "train_size", "val_size")}


def _check_numbers(config: dict[str, Any], applied: list[str]) -> None:
    for section, keys in POSITIVE.items():
        for key in keys:
            value = config[section].get(key)
            if value is not None and not value > 0:
                raise UserError(f"--set {' '.join(applied)}: {section}.{key} must be positive, "
                                f"got {value}")


def _check_split(train: dict[str, Any], applied: list[str]) -> None:
    """A data-parallel job's batch must split evenly over its processes."""
    gpus, batch = train.get("gpus", 1), train["batch_size"]
    if not isinstance(gpus, int) or gpus < 1:
        raise UserError(f"--set {' '.join(applied)}: train.gpus must be a positive integer, "
                        f"got {gpus!r}")
    if batch % gpus:
        raise UserError(f"batch size {batch} does not split evenly over {gpus} GPUs per job; "
                        f"choose a --batch-size divisible by {gpus} or another --gpus-per-job")


def input_size(config: dict[str, Any]) -> int:
    """The image size (square) a job trains and evaluates at: its data's ``image_size``, else
    its provider's default. Its model is built for this size."""
    data = config["data"]
    return data.get("image_size") or PROVIDER_IMAGE_SIZE.get(data["provider"],
                                                             DEFAULT_IMAGE_SIZE)


def _size_model(config: dict[str, Any], applied: list[str]) -> bool:
    """Build a size-dependent model for the job's images: ``model.options.input_size`` is the
    job's :func:`input_size` where that is not the paper's for the form; at the paper's the
    model config stays as the row gives it (None or absent). A ``--set`` of the option that
    disagrees with the data is refused. Returns whether the model is sized off the paper's."""
    model = config["model"]
    try:
        if not size_dependent(model["attention"]) or model["form"] not in INPUT_SIZE:
            return False
    except ModelConfigError:
        return False  # an unknown method: building the model says so
    size, options = input_size(config), model["options"]
    given = options.get("input_size")
    if given is not None and given != size:
        raise UserError(
            f"--set {' '.join(applied)}: model.options.input_size ({given}) is the job's image "
            f"size ({size}), not a choice of its own; set data.image_size instead")
    if size != INPUT_SIZE[model["form"]]:
        options["input_size"] = size
        return True
    if "input_size" in options:
        options["input_size"] = None
    return False


def _check_model(model: dict[str, Any], context: str) -> None:
    error = _build_error(json.dumps(model, sort_keys=True))
    if error:
        raise UserError(f"{context}: {error}")


@cache
def _build_error(model_json: str) -> str | None:
    """The first line of the error building the model config raises (None: it builds)."""
    try:
        ModelSpec(**json.loads(model_json)).check()
    except (ValueError, TypeError) as exc:
        return str(exc).splitlines()[0]
    return None
