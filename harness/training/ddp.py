"""Data-parallel jobs: one job trained by W processes with DistributedDataParallel.

A job whose config says ``train.gpus = W > 1`` (:func:`world_size`) is trained by W processes
(:func:`train_data_parallel`). The process that calls it (the runner's worker, which holds the
database connection and the hooks) is rank 0; it spawns ranks 1 … W-1 (``spawn`` start
method). Every rank runs :func:`harness.training.loop.train` with its :class:`Dist` (the
loop's ``ParallelContext``); ranks 1 … W-1 get no hooks and never write. Backend ``nccl``
with one GPU per rank (``cuda:<rank>`` among the GPUs the worker sees) when CUDA is
available, else ``gloo`` on the CPU, rendezvous on a free local TCP port (127.0.0.1).

* Every global batch (the job's ``batch_size``, the same permutation as a one-process run) is
  cut into W equal consecutive shards, rank r taking shard r: a W-process step sees exactly the
  samples of a one-process step. DDP averages the gradients, so with a per-sample loss the
  update is the one of the global batch; BatchNorm stays per process (as in the paper's
  DataParallel code) and BA²M's softmax spans the per-process batch unless its
  ``batch_scope="global"`` gathers it.
* The NaN/inf check and the epoch's loss/error sums are all-reduced, so every rank stops at
  the same step and rank 0 reports the global numbers.
* Rank 0 alone evaluates (the others wait at their next collective), checkpoints and calls the
  hooks; on resume every rank loads rank 0's checkpoint.
* When rank 0 stops for any reason (done, diverged, ``Stopped``, Ctrl-C, an error) its other
  ranks are joined or terminated before :func:`launch` returns; a rank whose parent dies exits
  on its own within a second. A rank that fails makes rank 0 fail with that rank's error.

``docs/distributed.md`` explains the choices.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from harness.training.checkpoints import Checkpoint
from harness.training.loop import Diverged, Hooks, Stopped, train
from harness.training.parallel import world_size
from models.protocols import BatchAware

if TYPE_CHECKING:
    from harness.training.data import Data
    from harness.training.devicedata import DeviceBatches

HOST = "127.0.0.1"
#: Collective timeout: how long a rank waits for the others (rank 0 evaluates alone while they
#: wait at their next collective, so this must exceed one evaluation).
TIMEOUT_S = float(os.environ.get("BA2M_DDP_TIMEOUT_S", 1800))
START_TIMEOUT_S = float(os.environ.get("BA2M_DDP_START_TIMEOUT_S", 600))
JOIN_S = 60.0  # how long a finished rank 0 waits for the others to exit before terminating them


def per_rank_batch(batch_size: int, world: int) -> int:
    """Each rank's share of the global batch; a ValueError when it does not split evenly."""
    if world < 1 or batch_size % world:
        raise ValueError(f"batch size {batch_size} does not split evenly over {world} "
                         f"data-parallel processes; choose a batch size divisible by {world}")
    return batch_size // world


@dataclass
class Dist:
    """This process's place in a data-parallel job (a ``harness.training.parallel``
    ``ParallelContext``)."""

    rank: int
    world: int
    device: torch.device

    # ------------------------------------------------------------------ collectives
    def all_finite(self, x: torch.Tensor) -> bool:
        """True when ``x`` is finite on every rank (one all-reduce)."""
        flag = torch.isfinite(x.detach()).all().to(torch.float32).reshape(1)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def sum(self, loss_sum: torch.Tensor, wrong: torch.Tensor,
            n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The epoch's sums over every rank (one all-reduce, in float64)."""
        t = torch.stack([loss_sum.detach().double(), wrong.double(),
                         torch.tensor(float(n), dtype=torch.float64, device=loss_sum.device)])
        dist.all_reduce(t)
        return t[0], t[1], int(t[2].item())

    # ------------------------------------------------------------------ model and data
    def wrap(self, net: nn.Module) -> nn.Module:
        """DDP around ``net``: gradients averaged over the ranks; BatchNorm buffers broadcast
        from rank 0 each forward (DDP's default), batch statistics per rank (plain BN)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)

    def batches(self, data: Data, config: dict[str, Any], epoch: int, device: torch.device,
                device_data: DeviceBatches | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's shard of each of the epoch's global batches."""
        t = config["train"]
        b = per_rank_batch(t["batch_size"], self.world)
        lo, hi = self.rank * b, (self.rank + 1) * b
        if device_data is not None:  # augmenting the global batch costs little on the device
            for x, y in device_data.epoch(epoch, t["batch_size"], config["seed"]):
                yield x[lo:hi], y[lo:hi]
            return
        for x, y in shard_loader(data.train_loader(epoch, t["batch_size"], config["seed"]),
                                 self.rank, self.world):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    # ------------------------------------------------------------------ evaluation, results
    def eval_batch_size(self, config: dict[str, Any], net: nn.Module) -> int:
        """The batch of rank 0's per-epoch evaluation: the one BA²M's softmax saw in
        training. ``eval_batch_size`` is a global batch like ``batch_size``: split over the
        ranks for the local scope (what a data-parallel evaluation computes), whole for the
        global scope."""
        size = config["train"]["eval_batch_size"]
        return size if batch_scope(net) == "global" else max(1, size // self.world)

    def result_extras(self, config: dict[str, Any], net: nn.Module) -> dict[str, Any]:
        """``eval_batch_size`` (the one used), ``world_size``, ``per_gpu_batch`` and
        ``batch_scope``, for rank 0's result."""
        return {"eval_batch_size": self.eval_batch_size(config, net), "world_size": self.world,
                "per_gpu_batch": config["train"]["batch_size"] // self.world,
                "batch_scope": batch_scope(net)}


def shard_loader(loader: DataLoader, rank: int, world: int) -> DataLoader:
    """``loader`` (full batches over a list of indices, last partial batch dropped) cut into
    ``world`` shards: batch k of the result is rank ``rank``'s slice of batch k of ``loader``.
    Only this rank's images are loaded (augmentations are seeded per image, so an image looks
    the same whichever process loads it)."""
    order, big = list(loader.sampler), loader.batch_size
    b = per_rank_batch(big, world)
    mine = [i for start in range(0, len(order) - big + 1, big)
            for i in order[start + rank * b:start + (rank + 1) * b]]
    return DataLoader(loader.dataset, batch_size=b, sampler=mine, drop_last=True,
                      num_workers=loader.num_workers, generator=loader.generator,
                      pin_memory=loader.pin_memory)


def batch_scope(net: nn.Module) -> str:
    """The batch scope of ``net``'s batch-aware modules (BA²M's softmax: "local", "global",
    both, or "n/a")."""
    return ",".join(sorted({m.batch_scope for m in net.modules()
                            if isinstance(m, BatchAware)})) or "n/a"


# ---------------------------------------------------------------------------------- launch
def launch(fn: Callable[..., Any], world: int, args: tuple[Any, ...] = (),
           rank0_kwargs: dict[str, Any] | None = None) -> Any:
    """Run ``fn(Dist, *args)`` on ``world`` ranks: this process is rank 0 (it also gets
    ``rank0_kwargs``, which need not pickle), ranks 1… are spawned. Returns rank 0's value.
    ``fn`` must be importable by name (a module-level function). Every spawned rank has
    exited when this returns or raises."""
    if world < 2:
        raise ValueError(f"launch needs at least 2 processes, got {world}")
    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised in this process")
    cuda = torch.cuda.is_available()
    if cuda and torch.cuda.device_count() < world:
        raise ValueError(
            f"this job needs {world} GPUs but the worker sees {torch.cuda.device_count()} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}); run with "
            f"--gpus listing at least {world} GPUs, or --gpus-per-job "
            f"{torch.cuda.device_count()}")
    backend = "nccl" if cuda else "gloo"
    timeout = datetime.timedelta(seconds=TIMEOUT_S)
    store = dist.TCPStore(HOST, 0, world, is_master=True, timeout=timeout,
                          wait_for_workers=False)
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.SimpleQueue()
    children: list[multiprocessing.process.BaseProcess] = []
    threads = torch.get_num_threads()
    finished = False
    try:
        for rank in range(1, world):
            p = ctx.Process(target=_child, name=f"ddp-rank{rank}", daemon=False,
                            args=(fn, rank, world, store.port, backend, os.getpid(), errors,
                                  args))
            p.start()
            children.append(p)
        device = _setup_rank(0, world, cuda)
        _wait_ready(store, children, errors)
        dist.init_process_group(backend, store=store, rank=0, world_size=world, timeout=timeout)
        watcher = _Watcher(children) if backend == "nccl" else None
        try:
            out = fn(Dist(0, world, device), *args, **(rank0_kwargs or {}))
        finally:
            if watcher is not None:
                watcher.stop()
        finished = True
        return out
    except Exception as exc:
        if not isinstance(exc, (Diverged, Stopped)):  # perhaps because another rank failed
            failure = _child_failure(errors, children)
            if failure == INTERRUPTED:  # Ctrl-C reached the other ranks first
                raise KeyboardInterrupt from exc
            if failure:
                raise RuntimeError(failure) from exc
        raise
    finally:
        _end_children(children, wait=JOIN_S if finished else 0.0)
        if dist.is_initialized():
            dist.destroy_process_group()
        torch.set_num_threads(threads)


def _setup_rank(rank: int, world: int, cuda: bool) -> torch.device:
    if cuda:
        torch.cuda.set_device(rank)
        return torch.device("cuda", rank)
    # W processes share the cores this process may use (rank 0 gets its threads back later)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, (cores or 1) // world))
    return torch.device("cpu")


def _wait_ready(store: dist.TCPStore, children: list[multiprocessing.process.BaseProcess],
                errors: Any) -> None:
    """Wait until every spawned rank is about to join the group; fail at once with its error
    if one dies first (init_process_group itself would wait for it until the timeout)."""
    keys = [f"ready/{p.name.removeprefix('ddp-rank')}" for p in children]
    deadline = time.monotonic() + START_TIMEOUT_S
    while not store.check(keys):
        dead = [p for p in children if not p.is_alive()]
        if dead:
            raise RuntimeError(_child_failure(errors, children)
                               or f"{dead[0].name} exited with code {dead[0].exitcode} "
                                  "before joining the process group")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the data-parallel ranks did not start within "
                               f"{START_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


class _Watcher(threading.Thread):
    """Rank 0's watch on the other ranks under NCCL: when one exits abnormally while rank 0
    still trains, abort the process group so that rank 0's pending collective fails at once
    instead of at the timeout (gloo notices a closed peer by itself)."""

    def __init__(self, children: list[multiprocessing.process.BaseProcess]) -> None:
        super().__init__(daemon=True, name="ddp-watcher")
        self.children = {p.sentinel: p for p in children}
        self._stop = threading.Event()
        self.start()

    def run(self) -> None:
        from multiprocessing.connection import wait

        while self.children and not self._stop.is_set():
            for sentinel in wait(list(self.children), timeout=0.5):
                if self.children.pop(sentinel).exitcode == 0:
                    continue  # finished its last epoch while rank 0 evaluates
                abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
                if not self._stop.is_set() and abort is not None:
                    abort()
                return

    def stop(self) -> None:
        self._stop.set()
        self.join(timeout=2.0)


#: What :func:`_child_failure` returns when a rank was interrupted (Ctrl-C).
INTERRUPTED = "interrupted"


def _child_failure(errors: Any, children: list[multiprocessing.process.BaseProcess]) -> str:
    """The first error a spawned rank reported, INTERRUPTED if one exited from Ctrl-C, or
    "" if none failed. Waits up to 5 s for ranks still running: rank 0's collective fails as
    soon as a peer closes its connection, which may be before that peer, on its way out from
    Ctrl-C or an error, has exited (with 130) or reported."""
    deadline = time.monotonic() + 5.0
    while True:
        if not errors.empty():
            return errors.get()
        codes = [p.exitcode for p in children]
        if 130 in codes:
            return INTERRUPTED
        if all(c == 0 for c in codes) or time.monotonic() > deadline:
            return ""
        time.sleep(0.05)


def _end_children(children: list[multiprocessing.process.BaseProcess], wait: float) -> None:
    """Join the spawned ranks (up to ``wait`` seconds), then terminate, then kill, the rest."""
    deadline = time.monotonic() + wait
    for p in children:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in children:
        if p.is_alive():
            p.terminate()
    for p in children:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()
    for p in children:
        p.close()


def _child(fn: Callable[..., Any], rank: int, world: int, port: int, backend: str,
           parent: int, errors: Any, args: tuple[Any, ...]) -> None:
    """A spawned rank: join the group, run ``fn``, report an error to rank 0."""
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    try:
        device = _setup_rank(rank, world, backend == "nccl")
        timeout = datetime.timedelta(seconds=TIMEOUT_S)
        store = dist.TCPStore(HOST, port, world, is_master=False, timeout=timeout)
        store.set(f"ready/{rank}", "1")
        dist.init_process_group(backend, store=store, rank=rank, world_size=world,
                                timeout=timeout)
        fn(Dist(rank, world, device), *args)
    except KeyboardInterrupt:  # Ctrl-C reaches every rank; rank 0 reports it
        sys.exit(130)
    except BaseException as exc:  # noqa: BLE001 - handed to rank 0, which fails the job
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        errors.put(f"data-parallel rank {rank} failed: {type(exc).__name__}: "
                   f"{str(exc).splitlines()[0] if str(exc) else ''}\n{traceback.format_exc()}")
        sys.exit(1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _exit_with_parent(parent: int) -> None:
    """A rank never outlives rank 0's process (killed with -9, say) by more than a second."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


# ------------------------------------------------------------------------- training jobs
def train_data_parallel(config: dict[str, Any], checkpoint: Checkpoint,
                        hooks: Hooks = Hooks()) -> dict[str, Any]:
    """Train ``config`` on ``train.gpus`` processes; this process is rank 0 and gets the
    hooks. Returns rank 0's result (with ``world_size``, ``batch_scope``, ``per_gpu_batch``)."""
    world = world_size(config)
    per_rank_batch(config["train"]["batch_size"], world)
    return launch(_train_rank, world, (config, checkpoint), {"hooks": hooks})


def _train_rank(d: Dist, config: dict[str, Any], checkpoint: Checkpoint,
                hooks: Hooks | None = None) -> dict[str, Any] | None:
    try:
        return train(config, checkpoint, hooks or Hooks(), d.device, parallel=d)
    except Diverged:
        if d.rank == 0:
            raise
        return None  # rank 0 raises the same (the finite check is all-reduced)

