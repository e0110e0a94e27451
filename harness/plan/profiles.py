"""The profiles: how much of the paper's recipe a run uses (no torch: ``ba2m-bench suites``
reads them without loading the zoo)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Profile:
    """How much of the paper's recipe a run uses."""

    name: str
    comparable: bool  # results may be set beside the paper's
    epochs: int | None = None  # None: the recipe's
    epoch_fraction: float = 1.0  # short: a fraction of the recipe's epochs
    synthetic: bool = False  # smoke: synthetic data, whatever the suite's dataset
    batch_size: int | None = None
    train_size: int | None = None
    val_size: int | None = None
    seeds: int | None = None  # None: the suite's (the paper's five)
    image_size: dict[str, int] = field(default_factory=dict)  # per model form
    gpus: int | None = None  # data-parallel processes per job; None: the recipe's


PROFILES = {
    "paper": Profile(name="paper", comparable=True),
    "short": Profile(name="short", comparable=False, epoch_fraction=0.25),
    # a first real run on a CPU (docs/he2016.md): a class-balanced 10,000 of the training
    # images, every test image, a few epochs (the recipe's lr steps scaled to them), 3 seeds
    "mini": Profile(name="mini", comparable=False, epochs=3, train_size=10_000, seeds=3, gpus=1),
    "smoke": Profile(
        name="smoke", comparable=False, epochs=1, synthetic=True, batch_size=16,
        train_size=64, val_size=32, seeds=1, image_size={"cifar": 16, "imagenet": 64},
        gpus=1,
    ),
}
