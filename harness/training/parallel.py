"""What the training loop needs from data parallelism, as an interface.

:func:`harness.training.loop.train` runs in one process; when a job is trained by several
(``harness.training.ddp``), each process passes its :class:`ParallelContext` and the loop
shards its batches, wraps its network, all-reduces its checks and sums, and evaluates, through
it. The loop never starts processes: the caller chooses by :func:`world_size`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

if TYPE_CHECKING:
    from harness.training.data import Data
    from harness.training.devicedata import DeviceBatches


def world_size(config: dict[str, Any]) -> int:
    """Processes a job config asks for (``train.gpus``, absent = 1)."""
    return int(config["train"].get("gpus", 1))


class ParallelContext(Protocol):
    """This process's place in a data-parallel job (implemented by ``ddp.Dist``)."""

    rank: int
    world: int
    device: torch.device

    def wrap(self, net: nn.Module) -> nn.Module:
        """The network to train: ``net`` with its gradients averaged over the processes."""
        ...

    def batches(self, data: Data, config: dict[str, Any], epoch: int, device: torch.device,
                device_data: DeviceBatches | None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's share of each of the epoch's training batches."""
        ...

    def sum(self, loss_sum: torch.Tensor, wrong: torch.Tensor,
            n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The epoch's sums over every process."""
        ...

    def all_finite(self, x: torch.Tensor) -> bool:
        """True when ``x`` is finite in every process."""
        ...

    def eval_batch_size(self, config: dict[str, Any], net: nn.Module) -> int:
        """The batch of rank 0's per-epoch evaluation of the bare ``net``."""
        ...

    def result_extras(self, config: dict[str, Any], net: nn.Module) -> dict[str, Any]:
        """What rank 0's result records besides the one-process fields (how it ran)."""
        ...
