"""Dataset providers: determinism, splits, errors, and that synthetic data can be learnt."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from harness.training.data import (
    PROVIDERS,
    DataSpec,
    DatasetLayoutError,
    MissingDatasetError,
    open_data,
)

# Real CIFAR-10 test images as JPEG class folders, beside the project (absent on most machines).
CIFAR10_TEST = (Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-test")


def _batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b)
    )


@pytest.fixture(scope="module")
def synthetic():
    return open_data(DataSpec("synthetic", train_size=256, val_size=64))


@pytest.fixture(scope="module")
def cifar10_folder():
    if not CIFAR10_TEST.is_dir():
        pytest.skip(f"{CIFAR10_TEST} not present")
    return open_data(DataSpec("image-folder", str(CIFAR10_TEST)))


def _write_images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(folder / f"{i}.png")


# --------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_labels_and_determinism(synthetic):
    assert (synthetic.num_classes, synthetic.image_size) == (10, 32)
    assert (synthetic.train_len, synthetic.val_len) == (256, 64)
    x, y = synthetic.train[5]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0 <= y < 10
    torch.rand(10)
    assert torch.equal(x, synthetic.train[5][0])
    again = open_data(DataSpec("synthetic", train_size=256, val_size=64))
    assert torch.equal(x, again.train[5][0])
    assert not torch.equal(synthetic.train[5][0], synthetic.train[15][0])  # same class, new sample
    assert not torch.equal(synthetic.train[5][0], synthetic.val[5][0])  # splits differ
    assert abs(float(x.mean())) < 0.5 and 0.5 < float(x.std()) < 1.5  # normalised
    assert {y for _, y in (synthetic.val[i] for i in range(64))} == set(range(10))


def test_synthetic_options():
    d = open_data(DataSpec("synthetic", num_classes=4, image_size=16, train_size=40, val_size=8))
    assert (d.num_classes, d.image_size, d.train_len, d.val_len) == (4, 16, 40, 8)
    assert d.train[0][0].shape == (3, 16, 16)
    assert max(d.train.targets) == 3


def test_train_loader_reproducible_whatever_happened_before(synthetic):
    first = _batches(synthetic.train_loader(epoch=3, batch_size=32, seed=7))
    _batches(synthetic.train_loader(epoch=0, batch_size=16, seed=1))
    _batches(synthetic.val_loader(32, order="shuffled", seed=5))
    torch.rand(1000)
    torch.manual_seed(12345)
    assert _same(first, _batches(synthetic.train_loader(epoch=3, batch_size=32, seed=7)))
    other_epoch = _batches(synthetic.train_loader(epoch=4, batch_size=32, seed=7))
    assert not torch.equal(first[0][1], other_epoch[0][1])
    other_seed = _batches(synthetic.train_loader(epoch=3, batch_size=32, seed=8))
    assert not torch.equal(first[0][1], other_seed[0][1])


def test_train_loader_leaves_global_rng_alone(synthetic):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _batches(synthetic.train_loader(epoch=0, batch_size=32, seed=0))
    assert torch.equal(torch.rand(3), expected)


def test_train_loader_drops_last_partial_batch():
    d = open_data(DataSpec("synthetic", train_size=100, val_size=10))
    sizes = [len(y) for _, y in d.train_loader(0, 32, 0)]
    assert sizes == [32, 32, 32]
    seen = torch.cat([y for _, y in d.train_loader(0, 10, 0)])
    assert len(seen) == 100  # a full epoch visits every image once
    with pytest.raises(ValueError, match="batch size"):
        d.train_loader(0, 101, 0)


def test_val_loader_orders(synthetic):
    natural = torch.cat([y for _, y in synthetic.val_loader(10)])
    assert natural.tolist() == synthetic.val.targets  # keeps the last partial batch
    ordered = torch.cat([y for _, y in synthetic.val_loader(16, order="class-sorted")])
    assert (ordered[1:] >= ordered[:-1]).all()
    assert sorted(ordered.tolist()) == sorted(natural.tolist())
    shuffled = [
        torch.cat([y for _, y in synthetic.val_loader(16, "shuffled", seed=s)]) for s in (1, 1, 2)
    ]
    assert torch.equal(shuffled[0], shuffled[1]) and not torch.equal(shuffled[0], shuffled[2])
    with pytest.raises(ValueError, match="class-sorted"):
        synthetic.val_loader(16, order="random")


def test_synthetic_is_learnable():
    """A 2-conv CNN, 2 epochs on CPU, beats chance (10%) several times over."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: one thread is fastest, and immune to a busy machine
    try:
        torch.manual_seed(0)
        d = open_data(DataSpec("synthetic"))
        net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, d.num_classes),
        )  # fmt: skip
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for epoch in range(2):
            for x, y in d.train_loader(epoch, 64, seed=0):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x), y).backward()
                opt.step()
        with torch.no_grad():
            correct = sum(int((net(x).argmax(1) == y).sum()) for x, y in d.val_loader(256))
    finally:
        torch.set_num_threads(threads)
    assert correct / d.val_len > 3 / d.num_classes


# --------------------------------------------------------------------------- image-folder


def test_image_folder_cifar10(cifar10_folder):
    d = cifar10_folder
    assert d.num_classes == 10
    assert list(d.classes) == sorted(p.name for p in CIFAR10_TEST.iterdir() if p.is_dir())
    assert (d.train_len, d.val_len) == (8000, 2000)
    train = {d.train.base.samples[i][0] for i in d.train.indices}
    val = {d.val.base.samples[i][0] for i in d.val.indices}
    assert not train & val and len(train | val) == 10000
    assert Counter(d.val.targets) == {k: 200 for k in range(10)}
    again = open_data(DataSpec("image-folder", str(CIFAR10_TEST)))
    assert again.train.indices == d.train.indices and again.val.indices == d.val.indices
    x, y = next(iter(d.val_loader(8)))
    assert x.shape == (8, 3, 32, 32)


def test_image_folder_limits_and_augmentation(cifar10_folder):
    spec = DataSpec("image-folder", str(CIFAR10_TEST), train_size=300, val_size=50)
    d = open_data(spec)
    assert (d.train_len, d.val_len) == (300, 50)
    assert set(d.train.indices) <= set(cifar10_folder.train.indices)
    assert set(d.val.indices) <= set(cifar10_folder.val.indices)
    assert Counter(d.train.targets) == {k: 30 for k in range(10)}  # class-balanced
    a = _batches(d.train_loader(1, 50, seed=3))
    torch.rand(5)
    assert _same(a, _batches(d.train_loader(1, 50, seed=3)))
    # Same image: augmentation is a function of (seed, epoch, position) alone.
    e1, e1_again, e2 = (d.train_loader(e, 50, seed=3).dataset for e in (1, 1, 2))
    assert all(torch.equal(e1[i][0], e1_again[i][0]) for i in range(10))
    assert any(not torch.equal(e1[i][0], e2[i][0]) for i in range(10))


def test_image_folder_workers_match_single_process(cifar10_folder):
    spec = DataSpec("image-folder", str(CIFAR10_TEST), train_size=128, val_size=16)
    single = _batches(open_data(spec).train_loader(2, 32, seed=1))
    multi = _batches(open_data(replace(spec, workers=2)).train_loader(2, 32, seed=1))
    assert _same(single, multi)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist") as missing:
        open_data(DataSpec("image-folder", str(tmp_path / "nope")))
    assert isinstance(missing.value, MissingDatasetError)  # absent data, whichever is caught
    one = tmp_path / "one"
    _write_images(one / "only", 3)
    with pytest.raises(DatasetLayoutError, match="at least 2"):
        open_data(DataSpec("image-folder", str(one)))
    two = tmp_path / "two"
    _write_images(two / "cats", 5)
    (two / "dogs").mkdir()
    with pytest.raises(DatasetLayoutError, match="dogs") as err:
        open_data(DataSpec("image-folder", str(two)))
    assert "\n" not in str(err.value)
    _write_images(two / "dogs", 5)
    d = open_data(DataSpec("image-folder", str(two), image_size=16))
    assert (d.train_len, d.val_len, d.classes) == (8, 2, ("cats", "dogs"))
    assert next(iter(d.val_loader(4)))[0].shape == (2, 3, 16, 16)


# --------------------------------------------------------------------------- other providers


@pytest.mark.parametrize("name", ["cifar100", "cifar10"])
def test_cifar_missing_is_one_line(tmp_path, name):
    with pytest.raises(MissingDatasetError) as err:
        open_data(DataSpec(name, str(tmp_path)))
    message = str(err.value)
    assert "\n" not in message and "--download" in message and str(tmp_path) in message
    assert isinstance(err.value, FileNotFoundError)


def test_imagenet_missing_or_wrong_layout(tmp_path):
    with pytest.raises(MissingDatasetError, match="train/"):
        open_data(DataSpec("imagenet", str(tmp_path)))
    _write_images(tmp_path / "train" / "n01", 2)
    (tmp_path / "val").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "flat.JPEG")
    with pytest.raises(MissingDatasetError, match="no class folders") as err:
        open_data(DataSpec("imagenet", str(tmp_path)))
    assert "\n" not in str(err.value)


def test_unknown_provider_lists_providers():
    with pytest.raises(ValueError) as err:
        open_data(DataSpec("mnist"))
    assert all(p in str(err.value) for p in PROVIDERS) and "\n" not in str(err.value)
