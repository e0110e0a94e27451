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

HE2016_CIFAR10 = Recipe(
    name="he2016-cifar10",
    epochs=164,
    batch_size=128,
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    milestones=(82, 123),
    gamma=0.1,
    augment="crop-flip",
    sources={
        "batch_size": "He et al. 2016 (CVPR), 4.2: 'trained with a mini-batch size of 128'",
        "lr": "He et al. 2016, 4.2: 'We start with a learning rate of 0.1'",
        "milestones": "He et al. 2016, 4.2: 'divide it by 10 at 32k and 48k iterations' = epochs "
        "82 and 123 at 50,000 images / 128 per batch",
        "epochs": "He et al. 2016, 4.2: 'terminate training at 64k iterations' = 164 epochs",
        "weight_decay": "He et al. 2016, 4.2: 'a weight decay of 0.0001'",
        "momentum": "He et al. 2016, 4.2: 'momentum of 0.9'",
        "augment": "He et al. 2016, 4.2: '4 pixels are padded on each side, and a 32x32 crop is "
        "randomly sampled from the padded image or its horizontal flip'; test: the single view "
        "of the original 32x32 image",
        "not followed": "ResNet-110's warm-up ('0.01 ... until the training error is below 80% "
        "(about 400 iterations), and then go back to 0.1'): the harness has no warm-up",
    },
)

RECIPES = {r.name: r for r in (CIFAR_STANDARD, IMAGENET_BAM, HE2016_CIFAR10)}
