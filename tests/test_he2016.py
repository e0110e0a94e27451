"""He et al. 2016's CIFAR-10 ResNets as a published anchor (suites/he2016.py, docs/he2016.md).

The option-A networks have the paper's parameter counts and parameter-free shortcuts; the
suite expands under every profile (the mini profile as docs/he2016.md runs it) and its
params pass ``count --check``; its BA²M rows build and train a step. One real-image test keeps
a small version of the mini reproduction honest: ResNet-20 learns the shared CIFAR-10 JPEGs
to a stated error within 3 minutes on 2 cores (skipped without ../shared/data).
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock
from typer.testing import CliRunner

import suites
from harness.cli import app
from harness.plan.jobs import PROFILES, expand
from harness.plan.overrides import Overrides
from harness.plan.spec import model_spec
from harness.store.db import ResultsDB
from harness.store.status import JobStatus
from models import build_model
from models.registry import attention_spec
from models.backbones import CIFAR_OPTION_A, PadShortcut
from suites.he2016 import PRINTED
from tests.conftest import SHARED_DATA

cli = CliRunner()
SUITE = suites.get("he2016")

#: Exact parameter counts at 10 classes (He et al. print 0.27, 0.46, 0.66, 0.85, 1.7 M).
PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", sorted(PARAMS))
def test_option_a_resnets_have_the_papers_parameters(depth: int) -> None:
    with torch.device("meta"):
        model = build_model(f"resnet{depth}a", form="cifar", num_classes=10)
    n, printed, _ = PRINTED[depth]
    assert CIFAR_OPTION_A[f"resnet{depth}a"] == n and 6 * n + 2 == depth
    assert _params(model) == PARAMS[depth]
    assert round(_params(model) / 1e6, 2 if printed < 1 else 1) == printed
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6 * n + 1  # + the classifier: 6n + 2 weighted layers
    assert all(c.kernel_size == (3, 3) for c in convs)  # no 1x1 projection anywhere


def test_shortcuts_are_parameter_free_identities() -> None:
    model = build_model("resnet20a", form="cifar", num_classes=10)
    blocks = [b for stage in model.stages for b in stage]
    assert len(blocks) == 9 and all(type(b) is BasicBlock for b in blocks)
    pads = [b.downsample for b in blocks if b.downsample is not None]
    assert len(pads) == 2 and all(isinstance(p, PadShortcut) for p in pads)
    assert all(_params(p) == 0 and not list(p.buffers()) for p in pads)
    x = torch.randn(2, 16, 8, 8)
    y = PadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()
    # the zoo's resnet20 (projection shortcuts) is unchanged and a different network
    assert _params(build_model("resnet20", form="cifar", num_classes=10)) == 272_474


@pytest.mark.parametrize(("attention", "options", "modules"), [
    ("ba2m", {}, 3),  # after each of the three stages
    ("ba2m", {"position": "inside"}, 9),  # on every block's bn2, as on the zoo's resnet20
    ("se", {}, 9),
    ("cbam", {}, 9),
    ("bam", {}, 2),  # between stages 1-2 and 2-3
])
def test_attention_attaches_as_on_the_other_cifar_resnets(attention: str, options: dict,
                                                          modules: int) -> None:
    method = attention_spec(attention).factory

    def placed(arch: str) -> list[str]:
        with torch.device("meta"):
            model = build_model(arch, form="cifar", num_classes=10, attention=attention,
                                **options)
        return [name for name, m in model.named_modules() if isinstance(m, method)]

    ours, zoo = placed("resnet20a"), placed("resnet20")
    assert ours == zoo and len(ours) == modules, ours
    with pytest.raises(ValueError, match="bottleneck"):
        build_model("resnet20a", form="cifar", attention="sk")


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_suite_expands_under_every_profile(name: str) -> None:
    jobs = expand(SUITE, PROFILES[name])
    rows = {j.row.label for j in jobs}
    assert len(rows) == len(SUITE.rows) == 7 and all(j.unavailable is None for j in jobs)
    seeds = PROFILES[name].seeds or SUITE.seeds
    assert len(jobs) == 7 * seeds
    for j in jobs:
        assert j.config["model"]["num_classes"] == 10
        assert j.config["model"]["arch"] == j.row.arch and j.row.arch.endswith("a")
        if j.row.method == "ba2m":
            assert j.config["model"]["options"]["stages"] == [1, 2, 3]
    train = jobs[0].config["train"]
    if name == "paper":
        assert jobs[0].config["comparable"] and jobs[0].config["data"] == {"provider": "cifar10"}
        assert (train["epochs"], train["batch_size"], train["lr"], train["milestones"]) == \
            (164, 128, 0.1, [82, 123])
        assert (train["momentum"], train["weight_decay"], train["augment"]) == \
            (0.9, 1e-4, "crop-flip")
    if name == "mini":
        assert jobs[0].config["data"] == {"provider": "cifar10", "train_size": 10_000}
        assert not jobs[0].config["comparable"] and seeds == 3
        assert (train["epochs"], train["milestones"], train["lr"]) == (3, [2], 0.1)


def test_the_mini_reproduction_plans_six_jobs_on_an_image_folder() -> None:
    """docs/he2016.md's command: ResNet-20 baseline and + BA²M, 3 seeds, 10,000 images."""
    over = Overrides(only="backbone=ResNet-20", dataset="image-folder")
    jobs = expand(SUITE, PROFILES["mini"], over, count_classes=lambda data: 10)
    assert sorted((j.row.method, j.seed) for j in jobs) == \
        [(m, s) for m in ("ba2m", "baseline") for s in range(3)]
    data = jobs[0].config["data"]
    assert data == {"provider": "image-folder", "train_size": 10_000, "num_classes": 10}


@pytest.mark.slow  # counts seven networks with fvcore: about 12 s on a busy CPU
def test_count_check_passes_with_the_papers_params(tmp_path: Path) -> None:
    db = str(tmp_path / "count.sqlite")
    res = cli.invoke(app, ["count", "--table", "he2016", "--check", "--format", "csv",
                           "--db", db])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    status = lines[0].split(",").index("status")
    by_row = {tuple(line.split(",")[2:4]): line.split(",")[status] for line in lines[1:]}
    assert by_row == {
        **{(f"ResNet-{d}", "baseline"): "match" for d in PRINTED},
        ("ResNet-20", "ba2m"): "counted", ("ResNet-56", "ba2m"): "counted",
    }


@pytest.mark.parametrize("depth", [20, 56])
def test_ba2m_rows_build_and_train_a_step(depth: int) -> None:
    row = next(r for r in SUITE.rows if r.arch == f"resnet{depth}a" and r.method == "ba2m")
    spec = model_spec(SUITE, row)
    assert spec.num_classes == 10 and spec.options["stages"] == [1, 2, 3]
    model = spec.build()
    assert _params(model) > PARAMS[depth]
    assert len([m for m in model.after if not isinstance(m, nn.Identity)]) == 3
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ------------------------------------------------------------- a small version, on real images
TRAIN_ZIP = SHARED_DATA / "cifar10-train.zip"
TEST_DIR = SHARED_DATA / "cifar10-test"
#: The small version: 2,500 training images (250 a class) from the zip, 1,000 test images
#: (100 a class), ResNet-20 (option A) baseline, 4 epochs of the mini profile's recipe with
#: its lr step after epoch 3 (lr 0.1, 0.1, 0.1, 0.01: the recipe's steps scaled to 4 epochs
#: fall after epochs 2 and 3, which leaves too little at 0.1 for so few images).
SMALL_TRAIN, SMALL_TEST, SMALL_EPOCHS, SMALL_MILESTONES = 250, 100, 4, "[3]"
#: Stated bound: best-epoch test error (%); 10-class chance is 90 %. It reached 65.5 % in 22 s
#: (5,000 images: 55.5 % in 38-68 s; halved to keep the whole suite's time down).
SMALL_BOUND = 72.0
#: The run is sized for a budget of 3 minutes on 2 CPU cores (it took 22 s on a quiet machine);
#: its time is printed, not asserted: speed targets live in ``ba2m-bench bench``.


def _small_cifar10(root: Path) -> Path:
    """``root/train/<class>`` (extracted from the zip) beside ``root/test/<class>`` (links
    into the shared test folder): the split layout docs/he2016.md makes of the whole set."""
    with zipfile.ZipFile(TRAIN_ZIP) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        per_class: dict[str, list[str]] = {}
        for n in names:
            per_class.setdefault(n.split("/")[1], []).append(n)
        for cls, files in per_class.items():
            folder = root / "train" / cls
            folder.mkdir(parents=True)
            for n in files[:SMALL_TRAIN]:
                (folder / Path(n).name).write_bytes(z.read(n))
    for cls in sorted(p.name for p in TEST_DIR.iterdir() if p.is_dir()):
        folder = root / "test" / cls
        folder.mkdir(parents=True)
        for f in sorted((TEST_DIR / cls).iterdir())[:SMALL_TEST]:
            (folder / f.name).symlink_to(f)
    return root


@pytest.mark.slow
@pytest.mark.skipif(not (TRAIN_ZIP.is_file() and TEST_DIR.is_dir()),
                    reason="../shared/data (CIFAR-10 JPEG copy) is absent")
def test_resnet20_learns_the_shared_cifar10_in_a_three_minute_budget(tmp_path: Path) -> None:
    start = time.monotonic()
    root = _small_cifar10(tmp_path / "cifar10")
    db = str(tmp_path / "small.sqlite")
    res = cli.invoke(app, [
        "run", "he2016", "--profile", "mini", "--only", "backbone=ResNet-20,method=baseline",
        "--seeds", "1", "--epochs", str(SMALL_EPOCHS),
        "--set", f"data.train_size={SMALL_TRAIN * 10}",
        "--set", f"train.milestones={SMALL_MILESTONES}",
        "--dataset", "image-folder", "--data-root", str(root),
        "--db", db, "--results-dir", str(tmp_path / "results"), "--gpus", "none",
        "--no-progress"])
    took = time.monotonic() - start
    assert res.exit_code == 0, res.output
    with ResultsDB(db) as rdb:
        done = rdb.results_frame("he2016")
    assert len(done) == 1 and done["status"].iloc[0] == JobStatus.COMPLETED, done
    err = float(done["best_top1_err"].iloc[0])
    print(f"ResNet-20 (option A), {SMALL_TRAIN * 10} shared JPEGs, {SMALL_EPOCHS} epochs: "
          f"best test error {err:.2f} % on {SMALL_TEST * 10} test images in {took:.0f} s")
    assert err <= SMALL_BOUND, err
