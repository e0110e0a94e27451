"""Named training recipes. Swap one by editing its preset here or overriding on the CLI.

ImageNet follows BAM's official code (the paper: "The setting of hyper-parameters is the same
as [6]"). CIFAR-100: the paper defers to BAM, whose code has no CIFAR recipe, so the preset is
the CIFAR recipe of He et al. 2016 (the paper's ResNet reference [11]) with the batch of 256 of
§IV-D4 and its learning rate scaled linearly from 0.1 at 128 (§IV-D4, Fig. 5).
"""

from __future__ import annotations

from suites.base import Recipe

CIFAR_STANDARD = Recipe(
    name="cifar-standard",
    epochs=164,
    batch_size=256,
    lr=0.2,
    momentum=0.9,
    weight_decay=1e-4,
    milestones=(82, 123),
    gamma=0.1,
    augment="crop-flip",
    sources={
        "epochs": "He et al. 2016 (CVPR), CIFAR: 64k iterations at batch 128 = 164 epochs",
        "milestones": "He et al. 2016: lr / 10 at 32k and 48k iterations = epochs 82 and 123",
        "batch_size": "BA2M paper, IV-D4: 'we set N to be 256'",
        "lr": "BA2M paper, IV-D4: 0.1 at N=128, changed linearly -> 0.2 at 256",
        "momentum": "He et al. 2016: 0.9",
        "weight_decay": "He et al. 2016: 1e-4",
        "augment": "BA2M paper, IV-A: random crops (4-px padding, He et al.) and flips",
    },
)

IMAGENET_BAM = Recipe(
    name="imagenet-bam",
    epochs=100,
    batch_size=256,
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    milestones=(30, 60, 90),
    gamma=0.1,
    augment="rrc-flip",
    eval_resize=256,
    eval_crop=224,
    gpus=8,
    sources={
        "all": "BAM official code (Jongchan/attention-module, train_imagenet.py): SGD, "
        "momentum 0.9, weight decay 1e-4, lr 0.1 per 256 images, x0.1 every 30 epochs, "
        "100 epochs, random-resized crop 224 + flip; eval resize 256, centre crop 224",
        "gpus": "BA2M paper, IV: 'CIFAR-related and ImageNet-related experiments are on a "
        "single card and eight cards, respectively' (32 images per card; docs/distributed.md)",
    },
)

RECIPES = {r.name: r for r in (CIFAR_STANDARD, IMAGENET_BAM)}
