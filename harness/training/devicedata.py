"""The CIFAR training pipeline on the device: the whole training set as one uint8 tensor
(on the GPU, or in memory on the CPU), augmented a batch at a time.

Equal in distribution to torchvision's ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``,
``ToTensor``, ``Normalize``: zero padding in uint8 space, crop offsets uniform in
[0, 2·pad], flips with probability 1/2, then scaling to [0, 1] and normalisation. Shuffling
is a permutation seeded by (seed, epoch), so the same seed gives the same batches, and a resumed
run sees the epoch it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F


class DeviceBatches:
    """Augmented, normalised training batches drawn from a uint8 tensor on ``device``."""

    def __init__(
        self,
        images: torch.Tensor,  # (N, H, W, 3) uint8, as torchvision's CIFAR .data
        labels: torch.Tensor | Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        pad: int = 4,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) uint8 images, got {tuple(images.shape)}")
        self.device = torch.device(device)
        self.images = images.permute(0, 3, 1, 2).contiguous().to(self.device)  # N,3,H,W
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255
        self.pad = pad

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor,
                                                                                torch.Tensor]]:
        """Full batches of one epoch (the last partial batch is dropped)."""
        from harness.training.data import mix_seed

        g = torch.Generator().manual_seed(mix_seed(seed, epoch, 7))
        n = len(self)
        order = torch.randperm(n, generator=g)
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            yield (self.augment(idx.to(self.device), offsets[idx].to(self.device),
                                flips[idx].to(self.device)), self.labels[idx.to(self.device)])

    def augment(self, idx: torch.Tensor, offsets: torch.Tensor,
                flips: torch.Tensor) -> torch.Tensor:
        """Crop with zero padding at ``offsets``, flip where ``flips``, normalise."""
        x = self.images[idx]
        b, _, h, w = x.shape
        p = self.pad
        padded = F.pad(x, (p, p, p, p))
        rows = (offsets[:, 0:1] + torch.arange(h, device=x.device)).view(b, 1, h, 1)
        cols = (offsets[:, 1:2] + torch.arange(w, device=x.device)).view(b, 1, 1, w)
        cols = torch.where(flips.view(b, 1, 1, 1), offsets[:, 1:2].view(b, 1, 1, 1) + w - 1
                           - torch.arange(w, device=x.device).view(1, 1, 1, w), cols)
        bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
        ci = torch.arange(3, device=x.device).view(1, 3, 1, 1)
        crop = padded[bi, ci, rows, cols]
        return (crop.float() - self.mean) / self.std
