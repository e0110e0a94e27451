"""A job's data and network, built from its config (as training and its readers build them)."""

from __future__ import annotations

from typing import Any

from torch import nn

from harness.plan.spec import ModelSpec
from harness.training.data import Data, DataSpec, open_data


def open_job_data(config: dict[str, Any]) -> Data:
    """The job's data, from its (runtime) config."""
    d = config["data"]
    return open_data(
        DataSpec(
            name=d["provider"],
            data_root=d.get("data_root"),
            download=d.get("download", False),
            image_size=d.get("image_size"),
            num_classes=d.get("num_classes"),
            train_size=d.get("train_size"),
            val_size=d.get("val_size"),
            workers=d.get("workers", 0),
        )
    )


def data_classes(data: dict[str, Any], data_root: str | None, download: bool = False) -> int:
    """The number of classes of the data a job's data config names, opened from
    ``data_root``: how a job whose provider does not fix its classes (image-folder) learns
    them before it is planned (``harness.plan.jobs.expand``'s ``count_classes``)."""
    return open_job_data({"data": {"provider": data["provider"], "data_root": data_root,
                                   "download": download}}).num_classes


def build_job_model(config: dict[str, Any], num_classes: int) -> nn.Module:
    """The job's network (untrained), for ``num_classes`` unless the config fixes them."""
    m = config["model"]
    return ModelSpec(m["arch"], m["form"], m["num_classes"] or num_classes, m["attention"],
                     m["options"], m.get("plugins")).build()
