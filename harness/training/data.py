"""Dataset providers: CIFAR-10/100, ImageNet, any class-per-folder tree, and synthetic images.

An image folder is either ``DIR/<class>/...`` (a fixed 20 % of each class held out for
validation) or, as torchvision ImageFolder users lay it out, ``DIR/train/<class>/...`` beside
``DIR/val/<class>/...`` (or ``DIR/test/``) with the same class folders.

:func:`open_data` turns a :class:`DataSpec` into a :class:`Data`, which hands out loaders.
Every loader is a pure function of its arguments:

* ``train_loader(epoch, batch_size, seed)`` visits the training set in a permutation drawn
  from ``(seed, epoch)``, drops the last partial batch, and draws each sample's random
  augmentation from a CPU generator seeded by ``(seed, epoch, position)``. Two loaders with
  the same arguments yield identical batches whatever the caller did to the global RNG, and
  iterating one leaves the caller's RNG state untouched.
* ``val_loader(batch_size, order, seed)`` is deterministic and keeps every image.

Tensors come out normalised: CIFAR with its own per-channel mean/std, ImageNet and image
folders with ImageNet's, synthetic images already zero-mean and roughly unit-variance.
"""

from __future__ import annotations

import math
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision import transforms as T

PROVIDERS: tuple[str, ...] = ("cifar100", "cifar10", "imagenet", "image-folder", "synthetic")

#: Where CIFAR looks when ``data_root`` is not given (relative to the working directory).
DEFAULT_DATA_ROOT = "data"
#: Share of each class an image folder holds out for validation.
IMAGE_FOLDER_VAL_FRACTION = 0.2
#: Held-out splits an image folder may have beside ``train/``, in order of preference.
IMAGE_FOLDER_VAL_SPLITS = ("val", "test")
VAL_ORDERS = ("natural", "shuffled", "class-sorted")

CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# Fixed seeds: data that must never change with the training seed.
_SUBSET_SEED = 0x5AB5E7
_SPLIT_SEED = 0x5B117
_SYNTH_SEED = 0xBA2A
_MASK64 = (1 << 64) - 1


class DataError(Exception):
    """Base of the errors below: a data set that cannot be opened as asked."""


class MissingDatasetError(DataError, FileNotFoundError):
    """The data set's files are not where they were looked for (one-line message)."""


class DatasetLayoutError(DataError, ValueError):
    """A folder tree that is not a usable class-per-folder data set (one-line message)."""


class MissingFolderError(MissingDatasetError, DatasetLayoutError):
    """An image-folder root that does not exist (both a layout and a missing-data error)."""


@dataclass(frozen=True)
class DataSpec:
    """Which data set to open and how."""

    name: str  # provider name, one of PROVIDERS
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None  # None: 32 for CIFAR/synthetic/image-folder, 224 for imagenet
    num_classes: int | None = None  # synthetic: the count; others: checked if given
    train_size: int | None = None  # limit (subset) of training images; synthetic: the size
    val_size: int | None = None  # limit of validation images; synthetic: the size
    workers: int = 0


# --------------------------------------------------------------------------- seeding helpers


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A 63-bit seed that depends on every value and their order (splitmix64 chain)."""
    h = 0
    for v in values:
        h = _splitmix64(h ^ _splitmix64(int(v) & _MASK64))
    return h >> 1


def _generator(*values: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(*values))


@contextmanager
def _cpu_rng(seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG for the block, then restore the caller's state."""
    state = torch.get_rng_state()
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state)


# --------------------------------------------------------------------------- datasets


class _View(Dataset):
    """Items ``indices`` of ``base`` (raw ``(image, label)`` pairs) through ``transform``."""

    def __init__(
        self, base: Any, indices: Sequence[int], targets: Sequence[int], transform: Callable
    ) -> None:
        self.base, self.indices, self.transform = base, list(indices), transform
        self.targets = [int(targets[i]) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[self.indices[i]]
        return self.transform(image), int(label)


class _Seeded(Dataset):
    """A view whose random transforms draw from a generator seeded by (seed, epoch, item)."""

    def __init__(self, view: _View, seed: int, epoch: int) -> None:
        self.view, self.seed, self.epoch = view, seed, epoch

    def __len__(self) -> int:
        return len(self.view)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        # The torchvision transforms used here draw only from torch's CPU RNG.
        with _cpu_rng(mix_seed(self.seed, self.epoch, i)):
            return self.view[i]


class SyntheticImages(Dataset):
    """Learnable images made on the fly: class prototype, shifted, plus Gaussian noise.

    Sample ``i`` of a split is always the same tensor (its own generator); its label is
    ``i % num_classes``. Prototypes are low-frequency colour blobs plus stripes, fixed by a
    constant seed (class ``k`` looks the same at every size and class count).
    """

    NOISE = 1.0

    def __init__(self, split: str, size: int, num_classes: int, image_size: int) -> None:
        self.split_code = zlib.crc32(split.encode())
        self.size, self.num_classes, self.image_size = size, num_classes, image_size
        self.targets = [i % num_classes for i in range(size)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self.size:
            raise IndexError(i)
        label = self.targets[i]
        g = _generator(_SYNTH_SEED, self.split_code, i)
        m = max(1, self.image_size // 8)
        dy, dx = torch.randint(-m, m + 1, (2,), generator=g).tolist()
        image = torch.roll(_prototype(label, self.image_size), (dy, dx), dims=(1, 2))
        noise = torch.randn(image.shape, generator=g)
        return (image + self.NOISE * noise) / math.sqrt(1 + self.NOISE**2), label


@lru_cache(maxsize=256)
def _prototype(k: int, size: int) -> torch.Tensor:
    """Class ``k``'s pattern (3, size, size), zero mean and unit std."""
    g = _generator(_SYNTH_SEED, k)
    coarse = torch.randn(1, 3, 4, 4, generator=g)
    blobs = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]
    fy, fx = torch.randint(1, 4, (2,), generator=g).tolist()
    phase = float(torch.rand(1, generator=g)) * 2 * math.pi
    amp = torch.randn(3, 1, 1, generator=g)
    grid = torch.arange(size, dtype=torch.float32) / size
    wave = torch.sin(2 * math.pi * (fy * grid[:, None] + fx * grid[None, :]) + phase)
    pattern = blobs + 0.5 * amp * wave
    return (pattern - pattern.mean()) / pattern.std()


# --------------------------------------------------------------------------- the Data object


class Data:
    """An opened data set: its sizes and classes, and loaders for training and evaluation."""

    def __init__(
        self,
        name: str,
        train: _View,
        val: _View,
        classes: Sequence[str],
        image_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        workers: int = 0,
    ) -> None:
        self.name, self.train, self.val = name, train, val
        self.classes = tuple(classes)
        self.num_classes = len(self.classes)
        self.image_size = image_size
        self.mean, self.std = mean, std
        self.workers = workers

    @property
    def train_len(self) -> int:
        return len(self.train)

    @property
    def val_len(self) -> int:
        return len(self.val)

    def __repr__(self) -> str:
        return (
            f"Data({self.name!r}, classes={self.num_classes}, size={self.image_size}, "
            f"train={self.train_len}, val={self.val_len})"
        )

    def train_uint8(self) -> tuple[torch.Tensor, list[int]] | None:
        """The training images as one (N, H, W, 3) uint8 tensor with their labels, where the
        provider holds them so (torchvision CIFAR at 32x32), for the on-device pipeline of
        ``harness.training.devicedata``; None otherwise."""
        raw = getattr(self.train.base, "data", None)
        size = (self.image_size, self.image_size, 3)
        if isinstance(raw, np.ndarray) and raw.dtype == np.uint8 and raw.shape[1:] == size:
            return torch.from_numpy(raw[self.train.indices]), list(self.train.targets)
        return None

    def train_loader(self, epoch: int, batch_size: int, seed: int) -> DataLoader:
        """Full batches in a (seed, epoch) permutation; augmentation fixed by (seed, epoch) too."""
        if batch_size > self.train_len:
            raise ValueError(
                f"batch size {batch_size} exceeds the {self.train_len} training images "
                "(last partial batches are dropped, so no batch would be left)"
            )
        order = torch.randperm(self.train_len, generator=_generator(seed, epoch, 0)).tolist()
        return self._loader(
            _Seeded(self.train, seed, epoch), order, batch_size, True, mix_seed(seed, epoch, 1)
        )

    def val_loader(self, batch_size: int, order: str = "natural", seed: int = 0) -> DataLoader:
        """Every validation image; ``order``: natural, shuffled (from ``seed``) or class-sorted."""
        if order == "natural":
            indices = list(range(self.val_len))
        elif order == "shuffled":
            indices = torch.randperm(self.val_len, generator=_generator(seed, -1)).tolist()
        elif order == "class-sorted":
            indices = sorted(range(self.val_len), key=lambda i: self.val.targets[i])
        else:
            raise ValueError(f"unknown val order {order!r}; choose one of {', '.join(VAL_ORDERS)}")
        return self._loader(self.val, indices, batch_size, False, mix_seed(seed, -2))

    def _loader(
        self, dataset: Dataset, order: list[int], batch_size: int, drop_last: bool, seed: int
    ) -> DataLoader:
        # Own generator: DataLoader then never draws from the caller's global RNG.
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=order,
            drop_last=drop_last,
            num_workers=self.workers,
            generator=torch.Generator().manual_seed(seed),
            pin_memory=torch.cuda.is_available(),
        )


# --------------------------------------------------------------------------- subsets and splits


def balanced_subset(targets: Sequence[int], n: int | None, seed: int = _SUBSET_SEED) -> list[int]:
    """Sorted indices of a deterministic, class-balanced ``n`` of ``targets`` (all if None).

    Items are ranked by a fixed seeded permutation, then dealt round-robin across classes, so
    the first ``n`` take ``n / classes`` from each (as far as each class allows).
    """
    if n is None or n >= len(targets):
        return list(range(len(targets)))
    if n <= 0:
        raise ValueError(f"subset size must be positive, got {n}")
    perm = torch.randperm(len(targets), generator=_generator(seed)).tolist()
    seen: Counter[int] = Counter()
    keyed = []
    for pos, i in enumerate(perm):
        keyed.append((seen[targets[i]], pos, i))
        seen[targets[i]] += 1
    return sorted(i for _, _, i in sorted(keyed)[:n])


def folder_split(
    targets: Sequence[int], classes: Sequence[str], val_fraction: float = IMAGE_FOLDER_VAL_FRACTION
) -> tuple[list[int], list[int]]:
    """(train, val) indices: per class, ``val_fraction`` held out by a fixed permutation.

    The permutation is seeded by a constant and the class *name*, so a class's split never
    changes between runs, training seeds, or when other classes are added.
    """
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(t, []).append(i)
    train: list[int] = []
    val: list[int] = []
    for k, items in sorted(by_class.items()):
        n_val = round(len(items) * val_fraction)
        if len(items) >= 2:
            n_val = min(max(n_val, 1), len(items) - 1)
        g = _generator(_SPLIT_SEED, zlib.crc32(classes[k].encode()))
        held = set(torch.randperm(len(items), generator=g)[:n_val].tolist())
        for j, i in enumerate(items):
            (val if j in held else train).append(i)
    return sorted(train), sorted(val)


# --------------------------------------------------------------------------- transforms


def _small_transforms(
    size: int, mean: Sequence[float], std: Sequence[float], resize: bool
) -> tuple[Callable, Callable]:
    """CIFAR-style: (resize,) pad-4 random crop, flip / (resize,) no crop."""
    head = [T.Resize((size, size))] if resize else []
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    train = T.Compose(head + [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()] + tail)
    return train, T.Compose(head + tail)


def _large_transforms(
    size: int, mean: Sequence[float], std: Sequence[float]
) -> tuple[Callable, Callable]:
    """ImageNet-style: RandomResizedCrop + flip / resize to size/0.875 + centre crop."""
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    train = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip()] + tail)
    val = T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size)] + tail)
    return train, val


# --------------------------------------------------------------------------- providers


def _view(base: Any, indices: Sequence[int], transform: Callable, limit: int | None) -> _View:
    """``indices`` of ``base``, cut to a class-balanced ``limit``, through ``transform``."""
    indices = list(indices)
    keep = balanced_subset([base.targets[i] for i in indices], limit)
    return _View(base, [indices[j] for j in keep], base.targets, transform)


def _whole(base: Any, spec: DataSpec, transform: Callable, train: bool) -> _View:
    return _view(base, range(len(base)), transform, spec.train_size if train else spec.val_size)


def _data(spec: DataSpec, train: _View, val: _View, classes: Sequence[str], size: int,
          mean: tuple[float, ...], std: tuple[float, ...]) -> Data:  # fmt: skip
    if spec.num_classes is not None and spec.num_classes != len(classes):
        where = f" at {spec.data_root}" if spec.data_root else ""
        raise ValueError(
            f"{spec.name}{where} has {len(classes)} classes, but num_classes={spec.num_classes} "
            "was asked (the job was planned for other data); point --data-root at that data"
        )
    return Data(spec.name, train, val, classes, size, mean, std, spec.workers)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _open_cifar(spec: DataSpec) -> Data:
    if spec.name == "cifar100":
        label, folder, cls = "CIFAR-100", "cifar-100-python", datasets.CIFAR100
        mean, std = CIFAR100_MEAN, CIFAR100_STD
    else:
        label, folder, cls = "CIFAR-10", "cifar-10-batches-py", datasets.CIFAR10
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    root = Path(spec.data_root or DEFAULT_DATA_ROOT).expanduser()
    fix = "pass --download to fetch it, or --data-root DIR"
    if not spec.download and not (root / folder).is_dir():
        raise MissingDatasetError(f"{label} not found under {root} (looked for {folder}/); {fix}")
    try:
        train = cls(str(root), train=True, download=spec.download)
        val = cls(str(root), train=False, download=False)
    except (RuntimeError, OSError) as err:
        doing = "downloaded to" if spec.download else "read from"
        raise MissingDatasetError(
            f"{label} could not be {doing} {root / folder} ({_one_line(err)}); {fix}"
        ) from err
    size = spec.image_size or 32
    train_t, val_t = _small_transforms(size, mean, std, resize=size != 32)
    return _data(
        spec, _whole(train, spec, train_t, True), _whole(val, spec, val_t, False),
        train.classes, size, mean, std,
    )  # fmt: skip


def _open_imagenet(spec: DataSpec) -> Data:
    hint = "(ImageFolder layout: train/<wnid>/*.JPEG and val/<wnid>/*.JPEG)"
    if spec.data_root is None:
        raise MissingDatasetError(f"ImageNet needs --data-root DIR {hint}")
    root = Path(spec.data_root).expanduser()
    for part in ("train", "val"):
        d = root / part
        if not d.is_dir():
            raise MissingDatasetError(f"ImageNet not found under {root}: no {part}/ folder {hint}")
        if not any(p.is_dir() for p in d.iterdir()):
            raise MissingDatasetError(
                f"ImageNet {d} has no class folders {hint}; sort a flat val/ into class folders"
            )
    try:
        train = datasets.ImageFolder(str(root / "train"))
        val = datasets.ImageFolder(str(root / "val"))
    except (FileNotFoundError, RuntimeError) as err:
        reason = _one_line(err)
        raise MissingDatasetError(f"ImageNet under {root} is unusable {hint}: {reason}") from err
    if train.classes != val.classes:
        diff = sorted(set(train.classes) ^ set(val.classes))
        raise MissingDatasetError(
            f"ImageNet under {root}: train/ and val/ class folders differ ({len(diff)} differ, "
            f"e.g. {', '.join(diff[:3])}) {hint}"
        )
    size = spec.image_size or 224
    train_t, val_t = _large_transforms(size, IMAGENET_MEAN, IMAGENET_STD)
    return _data(
        spec, _whole(train, spec, train_t, True), _whole(val, spec, val_t, False),
        train.classes, size, IMAGENET_MEAN, IMAGENET_STD,
    )  # fmt: skip


class _ClassFolders(datasets.ImageFolder):
    """torchvision's ImageFolder, blind to hidden folders (``.ipynb_checkpoints``, ...)."""

    @staticmethod
    def find_classes(directory: str | Path) -> tuple[list[str], dict[str, int]]:
        classes = sorted(e.name for e in os.scandir(directory)
                         if e.is_dir() and not e.name.startswith("."))
        if not classes:
            raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
        return classes, {c: i for i, c in enumerate(classes)}


def _class_folders(path: Path, layout: str) -> datasets.ImageFolder:
    """``path`` as an ImageFolder of at least 2 class folders, each holding images."""
    try:
        folder = _ClassFolders(str(path), allow_empty=True)
    except FileNotFoundError:
        raise DatasetLayoutError(f"image folder {path} holds no class folder (expected {layout})") \
            from None
    if len(folder.classes) < 2:
        raise DatasetLayoutError(
            f"image folder {path} has {len(folder.classes)} class folder(s); "
            f"need at least 2 ({layout})"
        )
    counts = Counter(folder.targets)
    empty = [c for k, c in enumerate(folder.classes) if counts[k] == 0]
    if empty:
        raise DatasetLayoutError(
            f"image folder {path}: class folder(s) with no images: {', '.join(empty)}"
        )
    return folder


def _some(names: Sequence[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more if names else "none"


def image_folder_splits(root: Path) -> tuple[Path, Path] | None:
    """``(root/train, root/val)`` (or ``root/test``) where ``root`` is laid out in splits as
    torchvision ImageFolder users lay them out; None for one folder of classes (split 80/20 by
    :func:`folder_split`). A ``train/`` without ``val/`` or ``test/``, or the reverse, is a
    :class:`DatasetLayoutError`."""
    subdirs = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    held = next((n for n in IMAGE_FOLDER_VAL_SPLITS if n in subdirs), None)
    if "train" in subdirs and held:
        return root / "train", root / held
    if "train" in subdirs:
        raise DatasetLayoutError(
            f"image folder {root} has train/ but no {'/ or '.join(IMAGE_FOLDER_VAL_SPLITS)}/ "
            f"beside it; add one with the same class folders, or pass --data-root "
            f"{root / 'train'} to hold out {IMAGE_FOLDER_VAL_FRACTION:.0%} of train/"
        )
    if held and subdirs <= {"train", *IMAGE_FOLDER_VAL_SPLITS}:
        raise DatasetLayoutError(
            f"image folder {root} has {held}/ but no train/ beside it; add train/ with the same "
            f"class folders"
        )
    return None


def _open_image_folder(spec: DataSpec) -> Data:
    layout = "one sub-folder of images per class, or train/ and val/ (or test/) of them"
    if spec.data_root is None:
        raise MissingFolderError(f"image-folder needs --data-root DIR ({layout})")
    root = Path(spec.data_root).expanduser()
    if not root.is_dir():
        raise MissingFolderError(f"image folder {root} does not exist (expected {layout})")
    splits = image_folder_splits(root)
    if splits is None:
        train_set = val_set = _class_folders(root, layout)
        train_idx, val_idx = folder_split(train_set.targets, train_set.classes)
    else:
        train_set, val_set = (_class_folders(p, "one sub-folder of images per class")
                              for p in splits)
        if train_set.classes != val_set.classes:
            held = splits[1].name
            only_train = [c for c in train_set.classes if c not in val_set.classes]
            only_val = [c for c in val_set.classes if c not in train_set.classes]
            raise DatasetLayoutError(
                f"image folder {root}: train/ and {held}/ hold different classes (only in "
                f"train/: {_some(only_train)}; only in {held}/: {_some(only_val)}); give both "
                "the same class folders"
            )
        train_idx, val_idx = list(range(len(train_set))), list(range(len(val_set)))
    size = spec.image_size or 32
    if size <= 64:
        train_t, val_t = _small_transforms(size, IMAGENET_MEAN, IMAGENET_STD, resize=True)
    else:
        train_t, val_t = _large_transforms(size, IMAGENET_MEAN, IMAGENET_STD)
    return _data(
        spec, _view(train_set, train_idx, train_t, spec.train_size),
        _view(val_set, val_idx, val_t, spec.val_size),
        train_set.classes, size, IMAGENET_MEAN, IMAGENET_STD,
    )  # fmt: skip


def _identity(x: torch.Tensor) -> torch.Tensor:
    """Synthetic tensors are already normalised."""
    return x


def _open_synthetic(spec: DataSpec) -> Data:
    num_classes = spec.num_classes or 10
    size = spec.image_size or 32
    if num_classes < 2 or size < 8:
        raise ValueError(
            f"synthetic needs num_classes >= 2 and image_size >= 8, got {num_classes} and {size}"
        )
    n_train = 2048 if spec.train_size is None else spec.train_size
    n_val = 512 if spec.val_size is None else spec.val_size
    if n_train < 1 or n_val < 1:
        raise ValueError(f"synthetic sizes must be positive, got train {n_train}, val {n_val}")
    train = SyntheticImages("train", n_train, num_classes, size)
    val = SyntheticImages("val", n_val, num_classes, size)
    classes = [f"class{k}" for k in range(num_classes)]
    return _data(
        spec,
        _view(train, range(n_train), _identity, None),
        _view(val, range(n_val), _identity, None),
        classes, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
    )  # fmt: skip


_OPENERS: dict[str, Callable[[DataSpec], Data]] = {
    "cifar100": _open_cifar,
    "cifar10": _open_cifar,
    "imagenet": _open_imagenet,
    "image-folder": _open_image_folder,
    "synthetic": _open_synthetic,
}


def open_data(spec: DataSpec) -> Data:
    """Open the data set ``spec`` names; errors are one line and say how to fix them."""
    opener = _OPENERS.get(spec.name)
    if opener is None:
        raise ValueError(f"unknown dataset {spec.name!r}; choose one of: {', '.join(PROVIDERS)}")
    return opener(spec)
