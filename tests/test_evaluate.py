"""Evaluation scores every image inside a batch of exactly the evaluation batch size."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from harness.training.loop import complete_batch, evaluate


class BatchDependent(nn.Module):
    """Logits that depend on the other images of the batch (as BA²M's do)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - 0.9 * x.mean(0, keepdim=True)


def _by_hand(x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """The rule written out: a last batch of r images is completed with the first
    batch - r images of the set, whose outputs are not scored."""
    model, wrong = BatchDependent(), 0
    for start in range(0, len(x), batch):
        part = x[start:start + batch]
        r = len(part)
        full = torch.cat([part, x[:batch - r]]) if r < batch else part
        assert len(full) == batch
        wrong += int((model(full)[:r].argmax(1) != y[start:start + r]).sum())
    return 100 * wrong / len(x)


def test_a_set_not_a_multiple_of_the_batch_is_scored_in_full_batches() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(23, 5, generator=g)
    y = torch.randint(0, 5, (23,), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    res = evaluate(BatchDependent(), loader, torch.device("cpu"), amp=False)
    assert res.images == 23
    assert res.top1_err == _by_hand(x, y, 8)
    # keeping the partial batch of 7 as it is would score otherwise on this set
    kept = sum(int((BatchDependent()(x[s:s + 8]).argmax(1) != y[s:s + 8]).sum())
               for s in range(0, 23, 8))
    assert res.top1_err != 100 * kept / 23


def test_a_set_smaller_than_one_batch_is_cycled() -> None:
    first = torch.arange(3.0).view(3, 1)
    assert complete_batch(first, 7).flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]
    x, y = torch.randn(3, 4), torch.tensor([0, 1, 2])
    res = evaluate(BatchDependent(), DataLoader(TensorDataset(x, y), batch_size=8),
                   torch.device("cpu"), amp=False)
    full = torch.cat([x, complete_batch(x, 5)])
    expected = 100 * int((BatchDependent()(full)[:3].argmax(1) != y).sum()) / 3
    assert res.images == 3 and res.top1_err == expected
