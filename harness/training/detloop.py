"""Training and evaluation of one detection job in this process, resumable from its checkpoint.

MMDetection v1's recipe on one device: each step takes ``batch_size`` images. With BA²M's
``batch_scope`` "local" (its default, and any job without attention) the step runs
``batch_size // images_per_gpu`` micro-batches of ``images_per_gpu`` images and accumulates
their gradients, each loss divided by the number of micro-batches: what ``gpus`` x
``images_per_gpu`` data-parallel processes compute, BatchNorm and BA²M each seeing one
process's images. With ``batch_scope`` "global" one forward takes all ``batch_size`` images.
The loss is the sum of the detector's losses; SGD with linear warm-up over the first
``warmup_iters`` steps and x ``gamma`` at each milestone epoch; gradient clipping; horizontal
flips. Images keep their size: the detector's own transform resizes them to ``min_size`` /
``max_size``. After the last epoch the model is evaluated one image at a time (MMDetection
tests one image per GPU), with VOC07 mAP and recall or COCO AP.

Reports through :class:`~harness.training.loop.Hooks` as the classification loop does; every
epoch ends with a checkpoint (model, optimizer, epoch, global step, history, RNG) and reports
``train_loss`` (mean per image of the steps' losses), ``lr`` (its last step's),
``images_per_s`` and ``seconds``. ``runtime.compile`` is not used (no torch.compile here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.training.checkpoints import Checkpoint
from harness.training.detjob import (
    DetectionData,
    build_detection_model,
    coco_ground_truth,
    open_detection_data,
)
from harness.training.detmetrics import coco_metrics, coco_results, voc07
from harness.training.loop import Diverged, Hooks, Stopped, seed_everything
from models.protocols import BatchAware

Target = dict[str, torch.Tensor]
Sample = tuple[torch.Tensor, Target]


def train_detection(config: dict[str, Any], checkpoint: Checkpoint, hooks: Hooks = Hooks(),
                    device: torch.device | None = None) -> dict[str, Any]:
    """Train the detection job ``config`` to its last epoch (resuming from ``checkpoint``
    when it holds one), evaluate it on the validation set and return the result:
    ``epochs``, ``eval_mode``, ``eval_batch_size`` (1), ``metrics`` (``recall``/``map`` or
    the COCO keys of ``suites.base.METRICS``) and, for VOC, ``ap_per_class``."""
    if config.get("evals"):
        raise ValueError("detection jobs have no evaluation variants (evals must be empty)")
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t = config["train"]
    micro = micro_batches(config)
    seed_everything(config["seed"])
    data = open_detection_data(config)
    net = build_detection_model(config).to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=t["lr"], momentum=t["momentum"],
                          weight_decay=t["weight_decay"])
    epoch, step, history = 0, 0, []
    saved, note = checkpoint.load()
    if saved is not None:
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        set_rng_state(saved["rng"])
        epoch, step, history = saved["epoch"], saved["step"], list(saved["history"])
        note = f"resumed from checkpoint after epoch {epoch}"
    if note:
        hooks.on_resume(epoch, note)
    for done, metrics in enumerate(history, 1):  # recorded again: an idempotent upsert
        hooks.on_epoch(done, metrics)

    while epoch < t["epochs"]:
        metrics, step = train_epoch(net, opt, params, data, epoch, step, config, micro,
                                    device, hooks)
        epoch, history = epoch + 1, [*history, metrics]
        checkpoint.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                         "epoch": epoch, "step": step, "history": history,
                         "rng": rng_state(), "config_hash": checkpoint.path.stem})
        hooks.on_epoch(epoch, metrics)
        if hooks.should_stop() and epoch < t["epochs"]:
            raise Stopped(f"stopped after epoch {epoch}")

    evaluation = evaluate_detector(net, data.val, data.format, data.masks, device,
                                   classes=data.classes)
    modes = sorted({m.eval_mode for m in net.modules() if isinstance(m, BatchAware)})
    return {"epochs": epoch, "eval_mode": ",".join(modes) or "n/a", "eval_batch_size": 1,
            **evaluation}


def micro_batches(config: Mapping[str, Any]) -> int:
    """Forwards per step: ``batch_size // images_per_gpu`` (BA²M's ``batch_scope`` "local",
    or no BA²M), or 1 (``batch_scope`` "global": one forward over the whole step)."""
    t = config["train"]
    batch, per_gpu = t["batch_size"], t["images_per_gpu"]
    if batch < 1 or per_gpu < 1 or batch % per_gpu:
        raise ValueError(f"batch_size {batch} must be a positive multiple of images_per_gpu "
                         f"{per_gpu}")
    if config["model"].get("options", {}).get("batch_scope", "local") == "global":
        return 1
    return batch // per_gpu


def lr_at(train: Mapping[str, Any], step: int, epoch: int) -> float:
    """The learning rate at global step ``step`` (0-based) of epoch ``epoch`` (0-based): ``lr``
    x ``gamma`` per milestone passed, x a linear warm-up from ``warmup_ratio`` over the first
    ``warmup_iters`` steps (MMDetection v1's schedule)."""
    lr = train["lr"] * train["gamma"] ** sum(epoch >= m for m in train["milestones"])
    if step < train["warmup_iters"]:
        ratio = train["warmup_ratio"]
        lr *= ratio + (1 - ratio) * step / train["warmup_iters"]
    return lr


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The training set's order in ``epoch``: a permutation of ``range(n)`` drawn from
    ``(seed, epoch)`` alone."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def epoch_flips(n: int, p: float, seed: int, epoch: int) -> list[bool]:
    """Whether each of the epoch's ``n`` images (in visiting order) is flipped: probability
    ``p``, drawn from ``(seed, epoch)`` alone."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 0x5F1)
    return (torch.rand(n, generator=g) < p).tolist()


def _as_list(batch: list[Sample]) -> list[Sample]:
    return batch


def epoch_batches(data: DetectionData, config: Mapping[str, Any], epoch: int
                  ) -> Iterator[list[Sample]]:
    """The epoch's steps: ``batch_size`` (image, training target) pairs each, in
    :func:`epoch_order`, flipped per :func:`epoch_flips`; a last incomplete step is dropped."""
    t = config["train"]
    n = len(data.train)  # type: ignore[arg-type]
    order = epoch_order(n, config["seed"], epoch)
    flips = epoch_flips(n, t["flip"], config["seed"], epoch)
    loader = DataLoader(data.train, batch_size=t["batch_size"], sampler=order, drop_last=True,
                        collate_fn=_as_list, num_workers=config["data"].get("workers", 0),
                        generator=torch.Generator().manual_seed(0))  # not the global RNG
    for i, batch in enumerate(loader):
        out = []
        for j, (image, target) in enumerate(batch):
            image = plain(image)
            target = training_target(target, data.masks, drop_difficult=data.format == "voc",
                                     image_size=tuple(image.shape[-2:]))
            if flips[i * t["batch_size"] + j]:
                image, target = hflip(image, target)
            out.append((image, target))
        yield out


def plain(x: Any) -> torch.Tensor:
    """A tv_tensor (Image, BoundingBoxes, Mask) as a plain tensor."""
    return torch.as_tensor(x).as_subclass(torch.Tensor)


def training_target(target: Mapping[str, Any], masks: bool, *, drop_difficult: bool,
                    image_size: tuple[int, int]) -> Target:
    """A loader's target as a detector's training target: ``boxes`` (N, 4 float),
    ``labels`` (N,) and, with ``masks``, ``masks`` (N, H, W uint8; ``image_size`` is (H, W));
    VOC's difficult objects (when ``drop_difficult``: MMDetection ignores them in training),
    COCO's crowd boxes (as MMDetection v1, whose assigners do not use them) and boxes without
    area (COCO has a few) are left out; an image without objects gets empty tensors."""
    boxes = plain(target.get("boxes", torch.zeros(0, 4))).float().reshape(-1, 4)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if drop_difficult and "difficult" in target:
        keep &= ~plain(target["difficult"]).bool()
    if "iscrowd" in target:  # MMDetection v1 trains on no crowd box (ignore_iof_thr=-1)
        keep &= ~torch.as_tensor(target["iscrowd"], dtype=torch.bool).reshape(-1)
    out = {"boxes": boxes[keep],
           "labels": plain(target.get("labels", torch.zeros(0))).long().reshape(-1)[keep]}
    if masks:
        m = target.get("masks")
        out["masks"] = (plain(m).to(torch.uint8)[keep] if m is not None
                        else torch.zeros(0, *image_size, dtype=torch.uint8))
    return out


def hflip(image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
    """The image mirrored left-right, with its boxes and masks."""
    width = image.shape[-1]
    out = dict(target)
    boxes = target["boxes"].clone()
    boxes[:, 0], boxes[:, 2] = width - target["boxes"][:, 2], width - target["boxes"][:, 0]
    out["boxes"] = boxes
    if "masks" in target:
        out["masks"] = target["masks"].flip(-1)
    return image.flip(-1), out


def train_epoch(net: nn.Module, opt: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                data: DetectionData, epoch: int, step: int, config: Mapping[str, Any],
                micro: int, device: torch.device, hooks: Hooks
                ) -> tuple[dict[str, float], int]:
    """One epoch from global step ``step``: (its metrics, the global step after it)."""
    t = config["train"]
    net.train()
    loss_sum, images, lr = 0.0, 0, lr_at(t, step, epoch)
    start = time.perf_counter()
    for batch in epoch_batches(data, config, epoch):
        lr = lr_at(t, step, epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = train_step(net, opt, params, batch, micro, t.get("grad_clip"), device)
        if not math.isfinite(loss):
            raise Diverged(f"diverged at epoch {epoch + 1}, step {step + 1} (loss {loss})")
        loss_sum, images, step = loss_sum + loss * len(batch), images + len(batch), step + 1
        if hooks.should_stop():
            raise Stopped(f"stopped during epoch {epoch + 1}")
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / max(images, 1), "lr": lr,
            "images_per_s": images / seconds if seconds else 0.0, "seconds": seconds}, step


def train_step(net: nn.Module, opt: torch.optim.Optimizer, params: Sequence[torch.Tensor],
               batch: Sequence[Sample], micro: int, grad_clip: float | None,
               device: torch.device) -> float:
    """One SGD step over ``batch`` in ``micro`` equal forwards whose losses (the sum of the
    detector's losses, each divided by ``micro``) accumulate their gradients; returns the
    step's loss (the micro-batches' mean)."""
    opt.zero_grad(set_to_none=True)
    size = len(batch) // micro
    total = 0.0
    for i in range(micro):
        images, targets = to_device(batch[i * size:(i + 1) * size], device)
        losses = net(images, targets)
        loss = sum(losses.values()) / micro
        loss.backward()
        total += float(loss.detach())
    if not math.isfinite(total):
        return total
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    return total


def to_device(batch: Sequence[Sample], device: torch.device
              ) -> tuple[list[torch.Tensor], list[Target]]:
    return ([image.to(device, non_blocking=True) for image, _ in batch],
            [{k: v.to(device, non_blocking=True) for k, v in target.items()}
             for _, target in batch])


def rng_state() -> dict[str, Any]:
    """torch's CPU and CUDA generator states (the detectors' samplers draw from them)."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def evaluate_detector(model: nn.Module, dataset: Dataset, fmt: str, masks: bool,
                      device: torch.device, *, classes: Sequence[str] | None = None
                      ) -> dict[str, Any]:
    """``model`` (eval mode, one image at a time) on ``dataset``: ``{"metrics": ...}`` with
    ``recall`` and ``map`` plus ``ap_per_class`` (named by ``classes``, else by label) for
    ``fmt`` "voc"; the COCO box AP keys (and the mask ones with ``masks``) for "coco"."""
    if fmt not in ("voc", "coco"):
        raise ValueError(f"unknown detection format {fmt!r}; choose voc or coco")
    model.eval()
    outputs: list[dict[str, torch.Tensor]] = []
    targets: list[Mapping[str, Any]] = []
    with torch.no_grad():
        for i in range(len(dataset)):  # type: ignore[arg-type]
            image, target = dataset[i]
            det = model([plain(image).to(device)])[0]
            outputs.append({k: v.cpu() for k, v in det.items()})
            targets.append(target)
    if fmt == "voc":
        return voc_metrics(outputs, targets, classes)
    ids = [int(t["image_id"]) for t in targets]
    metrics = coco_metrics(coco_ground_truth(dataset), coco_results(zip(ids, outputs)), "bbox")
    if masks:
        metrics |= coco_metrics(coco_ground_truth(dataset),
                                coco_results(zip(ids, outputs), masks=True), "segm")
    return {"metrics": metrics}


def voc_metrics(outputs: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]],
                classes: Sequence[str] | None) -> dict[str, Any]:
    """VOC07 ``recall`` and ``map`` and each class's AP (percent)."""
    labels = [int(x) for t in targets for x in plain(t["labels"]).reshape(-1)]
    k = len(classes) if classes else max(labels, default=0)
    result = voc07(outputs, [{key: plain(v) for key, v in t.items()} for t in targets], k)
    names = classes or [str(i) for i in range(1, k + 1)]
    return {"metrics": {"recall": result["recall"], "map": result["map"]},
            "ap_per_class": {names[label - 1]: ap for label, ap in result["ap"].items()}}
