"""Named training recipes. Swap one by editing its preset here or overriding on the CLI.

ImageNet follows BAM's official code (the paper: "The setting of hyper-parameters is the same
as [6]"). CIFAR-100: the paper defers to BAM, whose code has no CIFAR recipe, so the preset is
the CIFAR recipe of He et al. 2016 (the paper's ResNet reference [11]) with the batch of 256 of
§IV-D4 and its learning rate scaled linearly from 0.1 at 128 (§IV-D4, Fig. 5).

Detection (Tables III, IV, XIV-XVI): the paper trains with MMDetection and "all the related
hyper-parameters are not changed" (supplement, G), so the presets are MMDetection v1's configs:
``MMDET_COCO_2X`` (faster_rcnn / mask_rcnn / retinanet ``*_r50_fpn_2x.py``) and
``MMDET_VOC0712`` (``pascal_voc/faster_rcnn_r50_fpn_1x_voc0712.py``), the recipes of Tables III-IV
and XIV-XVI (docs/detection.md).
"""

from __future__ import annotations

from suites.base import DetectionRecipe, Recipe

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

_MMDET_V1 = "MMDetection v1 (open-mmlab/mmdetection v1.x, configs/"
_MMDET_COMMON = {
    "momentum": "MMDetection v1 configs: optimizer SGD(momentum=0.9, weight_decay=0.0001); "
    "the paper (supplement, G): 'synchronized SGD with a weight decay of 0.0001 and a momentum "
    "of 0.9'",
    "weight_decay": "as momentum",
    "warmup": "MMDetection v1 configs: lr_config warmup='linear', warmup_iters=500, "
    "warmup_ratio=1.0 / 3 (from lr / 3 to lr over the first 500 steps)",
    "grad_clip": "MMDetection v1 configs: optimizer_config grad_clip=dict(max_norm=35, "
    "norm_type=2)",
    "batch_size": "MMDetection v1: 8 GPUs x imgs_per_gpu=2 = 16 images per step",
    "flip": "MMDetection v1 train pipeline: RandomFlip(flip_ratio=0.5)",
}

MMDET_COCO_2X = DetectionRecipe(
    name="mmdet-coco-2x",
    epochs=24,
    batch_size=16,
    lr=0.02,
    momentum=0.9,
    weight_decay=1e-4,
    milestones=(16, 22),
    gamma=0.1,
    warmup_iters=500,
    warmup_ratio=1 / 3,
    grad_clip=35.0,
    scale=(1333, 800),
    flip=0.5,
    gpus=8,
    sources={
        **_MMDET_COMMON,
        "epochs": "BA2M paper, supplement G: 'We train all models for 24 epochs (Lr schd=2x)'",
        "milestones": "BA2M paper, supplement G: 'decays by a factor of 10 at the 16th and "
        "22th epochs'; " + _MMDET_V1 + "faster_rcnn_r50_fpn_2x.py): step=[16, 22]",
        "lr": _MMDET_V1 + "faster_rcnn_r50_fpn_2x.py, mask_rcnn_r50_fpn_2x.py): lr=0.02 for 16 "
        "images. The paper prints 'initialized as 0.01' (supplement G) but also 'all the related "
        "hyper-parameters are not changed'; 0.01 is MMDetection's RetinaNet rate and its rate for "
        "8 images. A RetinaNet job takes 0.01 (retinanet_r50_fpn_2x.py)",
        "scale": "MMDetection v1 COCO pipeline: Resize(img_scale=(1333, 800), keep_ratio=True)",
    },
)

MMDET_VOC0712 = DetectionRecipe(
    name="mmdet-voc0712",
    epochs=12,
    batch_size=16,
    lr=0.01,
    momentum=0.9,
    weight_decay=1e-4,
    milestones=(9,),
    gamma=0.1,
    warmup_iters=500,
    warmup_ratio=1 / 3,
    grad_clip=35.0,
    scale=(1000, 600),
    flip=0.5,
    gpus=8,
    sources={
        **_MMDET_COMMON,
        "epochs": _MMDET_V1 + "pascal_voc/faster_rcnn_r50_fpn_1x_voc0712.py): total_epochs=4 "
        "over RepeatDataset(times=3) = 12 passes over VOC 2007+2012 trainval",
        "milestones": "as epochs: step=[3] of the repeated data set = lr x0.1 after 9 passes",
        "lr": _MMDET_V1 + "pascal_voc/faster_rcnn_r50_fpn_1x_voc0712.py): lr=0.01",
        "scale": "MMDetection v1 VOC pipeline: Resize(img_scale=(1000, 600), keep_ratio=True)",
    },
)

DETECTION_RECIPES = {r.name: r for r in (MMDET_COCO_2X, MMDET_VOC0712)}
