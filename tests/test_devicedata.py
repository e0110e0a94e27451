"""The on-device CIFAR pipeline: same seed -> same batches; equal in distribution to
torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize."""

from __future__ import annotations

from collections import Counter

import torch
import torchvision.transforms.v2.functional as TF

from harness.training.devicedata import DeviceBatches

MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def _images(n: int = 64, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(1))


def test_same_seed_same_batches_and_epochs_differ() -> None:
    d = DeviceBatches(_images(), list(range(64)), MEAN, STD)
    a = list(d.epoch(3, 16, seed=7))
    b = list(d.epoch(3, 16, seed=7))
    c = list(d.epoch(4, 16, seed=7))
    assert len(a) == 4 and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
                               for x, y in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1])
    assert sorted(torch.cat([y for _, y in a]).tolist()) == list(range(64))  # a permutation


def _torchvision_outcomes(image: torch.Tensor) -> list[torch.Tensor]:
    """Every image torchvision's pipeline can produce from ``image`` (81 crops x 2 flips)."""
    chw = image.permute(2, 0, 1)
    padded = TF.pad(chw, [4, 4, 4, 4], fill=0)
    out = []
    for top in range(9):
        for left in range(9):
            crop = TF.crop(padded, top, left, 32, 32)
            for flip in (False, True):
                x = TF.horizontal_flip(crop) if flip else crop
                x = TF.normalize(TF.to_dtype(x, torch.float32, scale=True), MEAN, STD)
                out.append(x)
    return out


def test_equal_in_distribution_to_the_torchvision_pipeline() -> None:
    image = _images(1)
    outcomes = torch.stack(_torchvision_outcomes(image[0]))  # (162, 3, 32, 32)
    d = DeviceBatches(image.repeat(4096, 1, 1, 1), [0] * 4096, MEAN, STD)
    drawn = torch.cat([x for x, _ in d.epoch(0, 512, seed=0)])
    dist = torch.cdist(drawn.flatten(1), outcomes.flatten(1),
                       compute_mode="donot_use_mm_for_euclid_dist")
    best = dist.min(1)
    assert best.values.max() < 1e-4  # every draw is exactly one of torchvision's outcomes
    freq = Counter(best.indices.tolist())
    assert len(freq) == 162  # and every outcome occurs
    expected = len(drawn) / 162
    chi2 = sum((freq[k] - expected) ** 2 / expected for k in range(162))
    assert chi2 < 161 + 5 * (2 * 161) ** 0.5  # uniform: chi-square within 5 sd of its mean
