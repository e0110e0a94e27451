"""Resolved model configurations and their stable hashes.

A :class:`ModelSpec` is everything ``models.build_model`` needs; its hash identifies a model
(for cached counts) and, with the training settings and seed, a job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from harness.plan.available import NotAvailableError, check_available
from models import ModelConfigError, build_model
from models.catalogue import ARCHITECTURES, BUILTIN_METHODS
from models.plugins import ensure_plugins, plugin_records
from models.registry import DEFAULT_CLASSES, INPUT_SIZE, resolved_options
from suites.base import Row, Suite

__all__ = ["DATASET_CLASSES", "ModelSpec", "NotAvailableError", "check_available", "model_spec",
           "stable_hash"]


#: Classes of each real dataset a suite may declare. A suite's models are built (and counted)
#: with its dataset's classes, the form's default (``DEFAULT_CLASSES``) for any other.
DATASET_CLASSES = {"cifar100": 100, "cifar10": 10, "imagenet": 1000}


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of the canonical JSON of ``obj`` (sorted keys, tuples as lists)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot hash {type(obj).__name__}")


@dataclass(frozen=True)
class ModelSpec:
    """What to build: backbone, form, classes, attention method and its options, and the
    record of each plugin backbone or method it builds (``models.plugins``; absent from
    the config of a model of built-in parts, whose identity it therefore leaves alone)."""

    arch: str
    form: str
    num_classes: int
    attention: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    plugins: list[dict[str, Any]] | None = None

    @property
    def input_size(self) -> int:
        """The image size the model is built for: ``options["input_size"]`` where its config
        records one (a size-dependent model of a job at another size than the paper's, see
        ``harness.plan.jobs.input_size``), else the paper's for the form (224 ImageNet, 32
        CIFAR)."""
        return self.options.get("input_size") or INPUT_SIZE[self.form]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        if not self.plugins:
            del d["plugins"]
        return d

    def hash(self) -> str:
        return stable_hash(self.to_dict())

    def check(self) -> None:
        """Build once on the meta device (no memory, no initialisation): raises ValueError or
        TypeError when the options cannot make this model."""
        with torch.device("meta"):
            self.build()

    def build(self) -> nn.Module:
        if self.plugins:
            ensure_plugins(self.plugins)
        return build_model(
            self.arch,
            form=self.form,
            num_classes=self.num_classes,
            attention=self.attention,
            **self.options,
        )


def model_spec(suite: Suite, row: Row, num_classes: int | None = None) -> ModelSpec:
    """The model of ``row`` in ``suite`` (its dataset's class count unless given)."""
    if row.arch is None:
        raise NotAvailableError(f"not yet available: {row.label} has no backbone in the zoo")
    attention = None if row.method == "baseline" else row.method
    try:
        options = resolved_options(row.arch, suite.form, attention, dict(row.model))
    except ModelConfigError:
        options = dict(row.model)  # unknown method: check_available says what is missing
    return ModelSpec(
        row.arch, suite.form,
        num_classes or DATASET_CLASSES.get(suite.dataset) or DEFAULT_CLASSES[suite.form],
        attention, options, plugins_of(attention, row.arch, suite.form),
    )


def plugins_of(attention: str | None, arch: str | None = None,
               form: str | None = None) -> list[dict[str, Any]] | None:
    """The plugin records of ``arch``'s backbone and ``attention``'s methods that are not
    built in (None: none)."""
    builtin_arch = arch is None or (form, arch) in ARCHITECTURES
    if builtin_arch and (not attention or all(n in BUILTIN_METHODS
                                              for n in attention.split("+"))):
        return None
    try:
        return plugin_records(attention, None if builtin_arch else arch, form) or None
    except ModelConfigError:
        return None  # an unknown method or backbone: check_available says what is missing
