"""Training and evaluation of one job in this process, resumable from its last checkpoint.

The loop knows nothing of the database: it reports through :class:`Hooks`, which the runner
backs with the results database. Every epoch ends with a checkpoint
(:mod:`harness.training.checkpoints`) holding model, optimizer, scheduler and RNG states.
Nor does it know of process groups: one process of a data-parallel job passes its
:class:`~harness.training.parallel.ParallelContext` (``harness.training.ddp`` starts the
processes), and what the network records (eval modes, diagnostics) it learns through the
protocols of :mod:`models.protocols`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.training.checkpoints import Checkpoint
# importable from here too, where callers looked for them before checkpoints.py existed
from harness.training.data import Data
from harness.training.devicedata import DeviceBatches
from harness.training.job import build_job_model, open_job_data
from harness.training.parallel import ParallelContext, world_size
from models.modes import eval_mode
from models.protocols import BatchAware, ReportsDiagnostics


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Stopped(RuntimeError):
    """Training was asked to stop (interrupt, or the job was reclaimed elsewhere)."""


@dataclass(frozen=True, kw_only=True)
class Hooks:
    """How a training run reports; every hook is optional."""

    on_epoch: Callable[[int, dict[str, float]], None] = lambda epoch, metrics: None
    on_eval: Callable[[str, float, float], None] = lambda key, top1, top5: None
    on_resume: Callable[[int, str], None] = lambda epoch, note: None
    should_stop: Callable[[], bool] = lambda: False


@dataclass
class EvalResult:
    loss: float
    top1_err: float
    top5_err: float
    images: int


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list) else x


def evaluate(model: nn.Module, loader: Any, device: torch.device, amp: bool) -> EvalResult:
    """Mean loss, top-1 and top-5 error (%) over ``loader``.

    Every image is scored inside a batch of exactly ``loader.batch_size`` (BA²M weighs the
    evaluation batch): a last, partial batch of r images is completed with the first
    ``batch_size - r`` images of the pass (cycled when the whole set is smaller than one
    batch), whose outputs are not scored (docs/ba2m-options.md, "Evaluation batches")."""
    model.eval()
    loss = top1 = top5 = n = 0.0
    full = getattr(loader, "batch_size", None)
    first: torch.Tensor | None = None
    with torch.no_grad():
        for x, y in loader:
            x, y = _to(x, device), y.to(device)
            first = x if first is None else first
            scored = len(y)
            if full and scored < full:
                x = torch.cat([x, complete_batch(first, full - scored)])
            with autocast(device, amp):
                out = model(x)[:scored]
            loss += F.cross_entropy(out.float(), y, reduction="sum").item()
            k = min(5, out.shape[1])
            pred = out.topk(k, dim=1).indices
            hit = pred == y[:, None]
            top1 += hit[:, 0].sum().item()
            top5 += hit.any(1).sum().item()
            n += len(y)
    if n == 0:
        return EvalResult(float("nan"), float("nan"), float("nan"), 0)
    return EvalResult(loss / n, 100 * (1 - top1 / n), 100 * (1 - top5 / n), int(n))


def complete_batch(first: torch.Tensor, missing: int) -> torch.Tensor:
    """The ``missing`` context images that complete a partial batch: the first images of the
    pass, in order, cycled when fewer than ``missing``."""
    reps = -(-missing // len(first))
    return first.repeat(reps, *([1] * (first.dim() - 1)))[:missing]


def _to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def autocast(device: torch.device, amp: bool) -> Any:
    """bf16 autocast on a GPU when ``amp``; a no-op context otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)


def train(
    config: dict[str, Any],
    checkpoint: Checkpoint,
    hooks: Hooks = Hooks(),
    device: torch.device | None = None,
    parallel: ParallelContext | None = None,
) -> dict[str, Any]:
    """Train ``config`` to its last epoch (resuming if a checkpoint exists); return results.

    One process. A config with ``train.gpus`` W > 1 is trained by W data-parallel processes
    (``harness.training.ddp.train_data_parallel``), each calling this with its ``parallel``
    context; without one such a config is refused. Ranks other than 0 neither evaluate,
    checkpoint nor return results (they return ``{}``)."""
    if parallel is None and world_size(config) > 1:
        raise ValueError(f"this job asks for {world_size(config)} data-parallel processes; "
                         "train it with harness.training.ddp.train_data_parallel")
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = device.type == "cuda"
    t = config["train"]
    seed_everything(config["seed"])
    data = open_job_data(config)
    net = build_job_model(config, data.num_classes).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    # torch.compile is opt-in (--compile) until shown correct and faster on the target card
    compile_model = config.get("runtime", {}).get("compile")
    model = torch.compile(net) if compile_model and parallel is None else net
    opt = torch.optim.SGD(net.parameters(), lr=t["lr"], momentum=t["momentum"],
                          weight_decay=t["weight_decay"], nesterov=t["nesterov"])
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, t["milestones"], t["gamma"])
    state = TrainState()
    saved, note = checkpoint.load()
    if saved is not None:
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        state = TrainState(saved["epoch"], list(saved["history"]))
        note = f"resumed from checkpoint after epoch {state.epoch}"
    if parallel is not None:  # every rank loaded rank 0's checkpoint (or none) above
        model = parallel.wrap(net)
        model = torch.compile(model) if compile_model else model
    if note:
        hooks.on_resume(state.epoch, note)
    # a kill between saving a checkpoint and recording its epoch loses no row: the saved
    # history is recorded again (an idempotent upsert of the same values)
    for epoch, metrics in enumerate(state.history, 1):
        hooks.on_epoch(epoch, metrics)

    device_data = device_pipeline(data, config, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # data parallel: rank 0 evaluates the bare network alone, at the batch BA²M's softmax saw
    eval_model, eval_batch = model, t["eval_batch_size"]
    if parallel is not None:
        eval_model, eval_batch = net, parallel.eval_batch_size(config, net)
    for epoch in range(state.epoch, t["epochs"]):
        metrics = train_epoch(model, opt, data, epoch, config, device, amp, hooks, device_data,
                              parallel)
        sched.step()
        if parallel is not None and parallel.rank:
            continue
        val = evaluate(eval_model, data.val_loader(eval_batch), device, amp)
        metrics |= {"val_loss": val.loss, "top1_err": val.top1_err, "top5_err": val.top5_err}
        if diag := model_diagnostics(net):
            metrics["diagnostics"] = diag
        state.epoch, state.history = epoch + 1, [*state.history, metrics]
        checkpoint.save({
            "model": net.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "epoch": state.epoch, "history": state.history,
            "rng": _rng_state(), "config_hash": checkpoint.path.stem,
        })
        hooks.on_epoch(epoch + 1, metrics)
        if hooks.should_stop() and state.epoch < t["epochs"]:
            raise Stopped(f"stopped after epoch {state.epoch}")

    if parallel is not None and parallel.rank:
        return {}
    for variant in config.get("evals", []):
        loader = data.val_loader(variant.get("batch_size", eval_batch),
                                 variant.get("order", "natural"))
        with eval_mode(net, variant.get("eval_mode")):
            res = evaluate(eval_model, loader, device, amp)
        hooks.on_eval(eval_key(variant), res.top1_err, res.top5_err)
    result = summarize(state.history, config, net)
    if parallel is not None:
        result |= parallel.result_extras(config, net)
    return result


def model_diagnostics(net: nn.Module) -> dict[str, dict[str, float]]:
    """{module path: statistics since the last call} of every module reporting any."""
    out = {}
    for name, module in net.named_modules():
        if isinstance(module, ReportsDiagnostics) and (values := module.diagnostics()):
            out[name] = values
    return out


#: Batches between two checks of the loss for NaN/inf (each check waits for the device).
CHECK_EVERY = 50


def batches(data: Data, config: dict[str, Any], epoch: int, device: torch.device,
            device_data: DeviceBatches | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's training batches, from the on-device pipeline or the DataLoader."""
    t = config["train"]
    if device_data is not None:
        yield from device_data.epoch(epoch, t["batch_size"], config["seed"])
        return
    for x, y in data.train_loader(epoch, t["batch_size"], config["seed"]):
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def device_pipeline(data: Data, config: dict[str, Any],
                    device: torch.device) -> DeviceBatches | None:
    """The on-device pipeline when the job asks for it and the data allows it."""
    if config["train"].get("pipeline") != "device":
        return None
    raw = data.train_uint8()
    if raw is None:
        raise ValueError(f"the on-device pipeline needs uint8 training images; {data.name} "
                         "has none (use pipeline 'loader')")
    return DeviceBatches(raw[0], raw[1], data.mean, data.std, device)


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, data: Data, epoch: int,
                config: dict[str, Any], device: torch.device, amp: bool,
                hooks: Hooks, device_data: DeviceBatches | None = None,
                parallel: ParallelContext | None = None) -> dict[str, float]:
    """One epoch; sums stay on the device, so the loop waits for it only every CHECK_EVERY.
    Data parallel: this rank's shard of each batch; the finite check and sums span the ranks."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    lr = opt.param_groups[0]["lr"]
    start = time.perf_counter()
    source = (batches(data, config, epoch, device, device_data) if parallel is None
              else parallel.batches(data, config, epoch, device, device_data))
    for step, (x, y) in enumerate(source, 1):
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            out = model(x)
            loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * len(y)
        wrong += (out.detach().argmax(1) != y).sum()
        n += len(y)
        if step % CHECK_EVERY == 0 and not _finite(loss_sum, parallel):
            raise Diverged(f"diverged at epoch {epoch + 1}")
        if hooks.should_stop():
            raise Stopped(f"stopped during epoch {epoch + 1}")
    if not _finite(loss_sum, parallel):
        raise Diverged(f"diverged at epoch {epoch + 1}")
    if parallel is not None:
        loss_sum, wrong, n = parallel.sum(loss_sum, wrong, n)
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum.item() / max(n, 1), "train_err": 100 * wrong.item() / max(n, 1),
            "lr": lr, "images_per_s": n / seconds if seconds else 0.0, "seconds": seconds}


def _finite(x: torch.Tensor, parallel: ParallelContext | None) -> bool:
    return bool(torch.isfinite(x)) if parallel is None else parallel.all_finite(x)


def eval_key(variant: dict[str, Any]) -> str:
    """``{"batch_size": 8}`` -> ``"batch_size=8"`` (sorted keys)."""
    return ",".join(f"{k}={v}" for k, v in sorted(variant.items()))


def summarize(history: list[dict[str, float]], config: dict[str, Any],
              model: nn.Module) -> dict[str, Any]:
    """Best-epoch and last-epoch errors of a finished run."""
    best = min(range(len(history)), key=lambda i: history[i]["top1_err"])
    modes = sorted({m.eval_mode for m in model.modules() if isinstance(m, BatchAware)})
    return {
        "best_top1_err": history[best]["top1_err"],
        "best_top5_err": history[best]["top5_err"],
        "best_epoch": best + 1,
        "last_top1_err": history[-1]["top1_err"],
        "last_top5_err": history[-1]["top5_err"],
        "epochs": len(history),
        "eval_mode": ",".join(modes) or "n/a",
        "eval_batch_size": config["train"]["eval_batch_size"],
    }
