"""A detection job's data and network, built from its config (docs/detection.md).

Data (``config["data"]``): ``provider`` "voc0712" (train: VOC2007 + VOC2012 trainval, val:
VOC2007 test; ``data_root`` holds ``VOCdevkit``), "coco" (train2017 / val2017; ``data_root``
holds ``annotations/`` and the image folders) or "shapes" (the offline set of
:mod:`harness.training.shapes`, generated once into a cache folder in the layout of
``format`` and read back through the same loaders as the real data). ``train_size`` /
``val_size`` keep the first N images of each split.

Network (``config["model"]``, a :class:`~harness.plan.detector.DetectorSpec`): the untrained
detector, then its backbone's weights from ``pretrained``: none, a torchvision-format ResNet
state dict file, or the harness's own ImageNet job ``job:<config hash>`` (its checkpoint under
``<results_dir>/checkpoints/``). Nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset, Subset

from harness.errors import UserError
from harness.paths import inside
from harness.plan.detector import NO_WEIGHTS, DetectorSpec
from harness.training.checkpoints import Checkpoint
from harness.training.data import MissingDatasetError
from harness.training.detdata import VOC_CLASSES, coco_detection, voc_detection
from harness.training.shapes import CLASSES, shapes_dataset, write_coco, write_voc
from models.detection import ResNetBody, attention_types, resnet_body
from models.registry import build_model

DET_PROVIDERS = ("voc0712", "coco", "shapes")
FORMATS = ("voc", "coco")
#: Images of the shapes set's splits when ``train_size`` / ``val_size`` is None.
SHAPES_DEFAULT_SIZES = {"train": 500, "val": 100}
#: Data seeds of the shapes splits: fixed, so every job sees the same images.
SHAPES_SEEDS = {"train": 0, "val": 1}
#: Bump when the written shapes layout changes (old caches are then ignored).
SHAPES_CACHE_VERSION = 1
#: State-dict prefix of a zoo network's classifier: an ImageNet job's ``fc`` is not loaded.
CLASSIFIER = "fc."


class BackboneWeightsError(UserError, ValueError):
    """Backbone weights that do not fit the detector (one-line message)."""


class MissingWeightsError(BackboneWeightsError, FileNotFoundError):
    """A weights file or an ImageNet job's checkpoint that does not exist (one line)."""


@dataclass(frozen=True)
class DetectionData:
    """A detection job's splits: ``(image float (3, H, W) in [0, 1], target)`` items whose
    targets hold ``boxes`` (x0, y0, x1, y1 pixels) and ``labels`` (1-based), plus ``masks``
    (COCO with masks) or ``difficult`` (VOC). ``format`` decides the metric ("voc": VOC07
    mAP, "coco": COCO AP); ``classes[k - 1]`` names label k."""

    train: Dataset
    val: Dataset
    format: str
    masks: bool
    classes: tuple[str, ...]


# --- data ----------------------------------------------------------------------------------


def open_detection_data(config: Mapping[str, Any]) -> DetectionData:
    """The job's data, from its (runtime) config's ``data`` section."""
    d = config["data"]
    provider, masks = d["provider"], bool(d.get("masks", False))
    if provider not in DET_PROVIDERS:
        raise ValueError(f"unknown detection data provider {provider!r}; choose one of "
                         f"{', '.join(DET_PROVIDERS)}")
    fmt = d.get("format", "voc") if provider == "shapes" else (
        "voc" if provider == "voc0712" else "coco")
    if fmt not in FORMATS:
        raise ValueError(f"unknown detection data format {fmt!r}; choose voc or coco")
    if masks and fmt != "coco":
        raise ValueError(f"{provider} in the {fmt} format has no masks; masks need COCO data "
                         "(format 'coco')")
    if provider == "shapes":
        root = shapes_root(d.get("data_root"), fmt, d.get("image_size") or 96,
                           d.get("train_size"), d.get("val_size"))
        train, val, classes = _open_splits(root, fmt, masks, CLASSES, shapes=True)
    else:
        root = _real_root(provider, d.get("data_root"))
        train, val, classes = _open_splits(root, fmt, masks, VOC_CLASSES, shapes=False)
    return DetectionData(first(train, d.get("train_size")), first(val, d.get("val_size")),
                         fmt, masks, classes)


def first(dataset: Dataset, n: int | None) -> Dataset:
    """The first ``n`` items of ``dataset`` (all of it when None or larger)."""
    if n is None or n >= len(dataset):  # type: ignore[arg-type]
        return dataset
    return Subset(dataset, range(n))


def _real_root(provider: str, data_root: str | None) -> Path:
    if data_root is None:
        layout = ("DIR/VOCdevkit/VOC2007/ (trainval, test) and DIR/VOCdevkit/VOC2012/ "
                  "(trainval)" if provider == "voc0712" else
                  "DIR/annotations/instances_{train,val}2017.json with DIR/train2017/ and "
                  "DIR/val2017/")
        raise MissingDatasetError(f"{provider} needs its files: pass --data-root DIR with "
                                  f"{layout}")
    return Path(data_root)


def _open_splits(root: Path, fmt: str, masks: bool, voc_classes: Sequence[str], *,
                 shapes: bool) -> tuple[Dataset, Dataset, tuple[str, ...]]:
    """(train, val, class names) of ``root`` in ``fmt``; VOC07+12 unless ``shapes``."""
    if fmt == "voc":
        train = voc_detection(root, "trainval", "2007", voc_classes)
        if not shapes:
            train = ConcatDataset([train, voc_detection(root, "trainval", "2012", voc_classes)])
        return train, voc_detection(root, "test", "2007", voc_classes), tuple(voc_classes)
    train = with_objects(coco_detection(root, "train2017", masks=masks))
    val = coco_detection(root, "val2017", masks=masks)
    return train, val, coco_class_names(val)


def with_objects(dataset: Any) -> Dataset:
    """A COCO training set without its images that have no annotation (MMDetection v1's
    ``filter_empty_gt``); the test set keeps every image."""
    annotated = {a["image_id"] for a in dataset.coco.anns.values()}
    keep = [i for i, image_id in enumerate(dataset.ids) if image_id in annotated]
    return dataset if len(keep) == len(dataset.ids) else Subset(dataset, keep)


def coco_class_names(dataset: Any) -> tuple[str, ...]:
    """Names by label (category id) of a COCO dataset; ids without a category are ""."""
    cats = dataset.coco.cats
    return tuple(cats[k]["name"] if k in cats else "" for k in range(1, max(cats) + 1))


def shapes_root(data_root: str | None, fmt: str, image_size: int, train_size: int | None,
                val_size: int | None) -> Path:
    """The cached shapes set in ``fmt``'s layout (VOC: a VOCdevkit with VOC2007 trainval and
    test; COCO: train2017 and val2017), written first if absent. Written to a temporary
    folder and renamed into place, so a reader never sees half a set."""
    n_train = train_size or SHAPES_DEFAULT_SIZES["train"]
    n_val = val_size or SHAPES_DEFAULT_SIZES["val"]
    base = Path(data_root) if data_root else Path(tempfile.gettempdir())
    key = f"v{SHAPES_CACHE_VERSION}-{fmt}-{image_size}px-train{n_train}-val{n_val}"
    root = inside(base, "ba2m-bench-shapes", key)
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root.parent))
    try:
        train = shapes_dataset(n_train, image_size, seed=SHAPES_SEEDS["train"])
        val = shapes_dataset(n_val, image_size, seed=SHAPES_SEEDS["val"])
        if fmt == "voc":
            write_voc(train, tmp, "trainval", "2007")
            write_voc(val, tmp, "test", "2007")
        else:
            write_coco(train, tmp, "train2017")
            write_coco(val, tmp, "val2017")
        os.rename(tmp, root)
    except OSError:
        if not root.is_dir():  # another process did not finish it first: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def coco_ground_truth(dataset: Dataset) -> Any:
    """The ``pycocotools.coco.COCO`` ground truth of a COCO dataset (or a :class:`Subset`
    of one), restricted to its images."""
    from pycocotools.coco import COCO

    base, indices = dataset, None
    if isinstance(dataset, Subset):
        base, indices = dataset.dataset, list(dataset.indices)
    full = base.coco
    if indices is None:
        return full
    ids = {base.ids[i] for i in indices}
    sub = COCO()
    sub.dataset = {**full.dataset,
                   "images": [im for im in full.dataset["images"] if im["id"] in ids],
                   "annotations": [a for a in full.dataset["annotations"]
                                   if a["image_id"] in ids]}
    with contextlib.redirect_stdout(io.StringIO()):
        sub.createIndex()
    return sub


# --- network -------------------------------------------------------------------------------


def build_detection_model(config: Mapping[str, Any]) -> nn.Module:
    """The job's detector with its backbone weights loaded (``model.pretrained``); an
    ImageNet job's checkpoint is looked for under ``config["runtime"]["results_dir"]``."""
    spec = DetectorSpec(**config["model"])
    model = spec.build()
    if spec.pretrained == NO_WEIGHTS:
        return model
    if (job := spec.pretrained_job) is not None:
        results_dir = config.get("runtime", {}).get("results_dir")
        if results_dir is None:
            raise BackboneWeightsError(f"backbone job:{job} needs the results folder holding "
                                       "its checkpoint (config['runtime']['results_dir'])")
        load_backbone_job(model, spec, job_checkpoint(results_dir, job))
    else:
        load_backbone_file(model, spec, Path(spec.pretrained))
    return model


def job_checkpoint(results_dir: str | Path, config_hash: str) -> Checkpoint:
    """The checkpoint of the harness job ``config_hash``: ``<results>/checkpoints/<hash>.pt``."""
    return Checkpoint(inside(results_dir, "checkpoints", f"{config_hash}.pt"))


def detector_body(model: nn.Module) -> nn.Module:
    """The detector's ResNet (torchvision layout: conv1, bn1, layer1..layer4)."""
    return model.backbone.body


def load_backbone_file(model: nn.Module, spec: DetectorSpec, path: Path) -> None:
    """Load a torchvision-format ResNet state dict into the detector's body by name. Every
    key of the plain ResNet must be found (attention modules' own keys are new layers and
    keep their initialisation), and the file may hold no other weights than ``fc.*`` (and
    the BatchNorm counters a frozen BatchNorm has no place for)."""
    if not path.is_file():
        raise MissingWeightsError(f"backbone weights {path} not found; pass an existing "
                                  "torchvision-format ResNet state dict, job:<hash> or none")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: one line
        raise BackboneWeightsError(f"backbone weights {path} unreadable "
                                   f"({_first_line(exc)})") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise BackboneWeightsError(f"backbone weights {path} are not a state dict of tensors")
    body = detector_body(model)
    try:
        missing, unexpected = body.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise BackboneWeightsError(f"backbone weights {path} do not fit {spec.arch}: "
                                   f"{_first_line(exc)}") from exc
    required = set(plain_body_keys(spec))
    if lacking := sorted(required & set(missing)):
        raise BackboneWeightsError(f"backbone weights {path} do not fit {spec.arch}: "
                                   f"{len(lacking)} of its {len(required)} weights are "
                                   f"missing (e.g. {lacking[0]})")
    if extra := sorted(k for k in unexpected if not k.startswith(CLASSIFIER)
                       and not k.endswith(".num_batches_tracked")):
        raise BackboneWeightsError(f"backbone weights {path} do not fit {spec.arch}: "
                                   f"{len(extra)} weights it does not have (e.g. {extra[0]}); "
                                   "the file may be another ResNet's")


def plain_body_keys(spec: DetectorSpec) -> list[str]:
    """The state-dict keys of ``spec``'s ResNet without attention: what a torchvision
    ResNet's weights must provide."""
    with torch.device("meta"):
        body = resnet_body(spec.arch, None, norm=spec.norm, frozen_stages=0,
                           bottleneck_stride=spec.bottleneck_stride)  # type: ignore[arg-type]
    return list(body.state_dict())


def load_backbone_job(model: nn.Module, spec: DetectorSpec, checkpoint: Checkpoint) -> None:
    """Load a harness ImageNet job's trained network (``build_model(arch, form="imagenet",
    attention, **options)``, bottleneck stride on the 1x1) into the detector's body: every
    weight but the classifier's must fit."""
    saved, note = checkpoint.load()
    job = checkpoint.path.stem
    if saved is None:
        raise MissingWeightsError(note or f"backbone job:{job} has no checkpoint at "
                                  f"{checkpoint.path}; run that ImageNet job first")
    net = build_model(spec.arch, form="imagenet", attention=spec.attention, **spec.options)
    state = {k: v for k, v in saved["model"].items() if not k.startswith(CLASSIFIER)}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise BackboneWeightsError(f"backbone job:{job}'s network does not fit {spec.arch} "
                                   f"with {spec.attention}: {_first_line(exc)}") from exc
    missing = [k for k in missing if not k.startswith(CLASSIFIER)]
    if missing or unexpected:
        raise BackboneWeightsError(
            f"backbone job:{job}'s network does not fit {spec.arch} with {spec.attention}: "
            f"{len(missing)} weights missing, {len(unexpected)} unexpected "
            f"(e.g. {(missing + unexpected)[0]})")
    mapped = ResNetBody(net, attention_types(spec.attention), spec.norm,  # type: ignore[arg-type]
                        spec.frozen_stages)
    try:
        detector_body(model).load_state_dict(mapped.state_dict(), strict=True)
    except RuntimeError as exc:
        raise BackboneWeightsError(f"backbone job:{job}'s network does not fit the "
                                   f"detector's body: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
