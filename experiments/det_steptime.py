"""CPU step and evaluation times of the detectors of issue #15, with and without BA²M.

Each detector (Faster R-CNN, Faster R-CNN + OHEM, Mask R-CNN, RetinaNet with focal loss and
with the softmax loss) is built through ``DetectorSpec`` as a detection job builds it:
ResNet-50, FPN-256, 4 classes, ``norm="eval"``, ``frozen_stages=1``, images resized to
320x320 (``min_size=max_size=320``). A train step is the detection loop's own
(``harness.training.detloop.train_step``: 2 shapes images, one forward, SGD, clip 35); the
table gives the median of steps 2-4 with all four in brackets. The evaluation is one image
through the untrained model in eval mode (BA²M is the identity there). Prints a markdown
table; not part of the harness.

    python experiments/det_steptime.py            # the full measurement (minutes per row)
    python experiments/det_steptime.py --quick    # ResNet-18, FPN-32, 64 px: checks it runs
"""

from __future__ import annotations

import os

# Before torch: idle OpenMP threads sleep instead of spinning (as tests/conftest.py and the
# runner's workers set it); spinning threads on a busy machine slow every step down.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import torch  # noqa: E402

from harness.plan.detector import DetectorSpec  # noqa: E402
from harness.training.detloop import train_step  # noqa: E402
from harness.training.shapes import as_tensors, shapes_dataset  # noqa: E402

#: (label, DetectorSpec fields) of each measured detector.
DETECTORS = (
    ("Faster R-CNN", {"detector": "faster_rcnn"}),
    ("Faster R-CNN + OHEM", {"detector": "faster_rcnn", "sampler": "ohem"}),
    ("Mask R-CNN", {"detector": "mask_rcnn"}),
    ("RetinaNet (focal)", {"detector": "retinanet"}),
    ("RetinaNet (softmax)", {"detector": "retinanet", "cls_loss": "softmax"}),
)
STEPS = 4
GRAD_CLIP = 35.0


@dataclass(frozen=True, kw_only=True)
class Setting:
    """What every row shares."""

    arch: str = "resnet50"
    fpn_channels: int = 256
    size: int = 320
    images: int = 2


QUICK = Setting(arch="resnet18", fpn_channels=32, size=64)


def spec(fields: dict[str, str], attention: str | None, setting: Setting) -> DetectorSpec:
    return DetectorSpec(arch=setting.arch, num_classes=4, attention=attention, norm="eval",
                        frozen_stages=1, fpn_channels=setting.fpn_channels,
                        min_size=setting.size, max_size=setting.size, **fields)


def measure(detector: DetectorSpec, setting: Setting) -> tuple[list[float], float]:
    """(seconds of each train step, seconds of one evaluation)."""
    torch.manual_seed(0)
    model = detector.build()
    batch = [as_tensors(item) for item in shapes_dataset(setting.images, setting.size, 0)]
    if detector.detector != "mask_rcnn":
        batch = [(image, {k: v for k, v in t.items() if k != "masks"}) for image, t in batch]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train()
    steps = []
    for _ in range(STEPS):
        start = time.perf_counter()
        train_step(model, opt, params, batch, 1, GRAD_CLIP, torch.device("cpu"))
        steps.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        model([batch[0][0]])
        evaluation = time.perf_counter() - start
    return steps, evaluation


def row(label: str, ba2m: bool, steps: list[float], evaluation: float) -> str:
    median = statistics.median(steps[1:])
    spread = ", ".join(f"{s:.2f}" for s in steps)
    return f"| {label} | {'✓' if ba2m else '–'} | {median:.2f} s ({spread}) | {evaluation:.2f} s |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="ResNet-18, FPN-32, 64 px: a check that every row runs")
    args = parser.parse_args()
    setting = QUICK if args.quick else Setting()
    load = os.getloadavg()
    print(f"{setting.arch}, FPN-{setting.fpn_channels}, {setting.size}x{setting.size}, "
          f"{setting.images} images per step, norm eval, frozen_stages 1, SGD + clip "
          f"{GRAD_CLIP:g}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(f"| Detector | BA²M | Train step, {setting.images} images (steps 1-{STEPS}) "
          "| Eval, 1 image |")
    print("|---|---|---|---|")
    for label, fields in DETECTORS:
        for attention in (None, "ba2m"):
            steps, evaluation = measure(spec(fields, attention, setting), setting)
            print(row(label, attention is not None, steps, evaluation), flush=True)
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
