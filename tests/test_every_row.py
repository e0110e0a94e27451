"""Every row runs (issue #17): for every suite and profile, each job's model builds for the
input size its job trains and evaluates at, and takes one training step and one evaluation
step on a batch of two.

Models are deduplicated across suites and profiles by (arch, form, attention, options, input
size); a failure names the (suite, profile, row) of every job that uses the model. Rows
declared "not yet available" are skipped; any other row the harness cannot build fails here.
The detection suites' jobs build detectors, which tests/test_detection_plan.py builds (every
job, every profile) and tests/test_detection_models.py steps.

Each model is built as training builds it (``harness.training.loop.build_job_model``) on the meta
device, and steps there: every shape, every size check of the modules (GE-θ's map size, AA's
relative embeddings, a kernel larger than its map) and the autograd graph, without the
arithmetic (a CPU step of the paper profile's 224x224 rows takes minutes). The rows built for
another size than the paper's (GE-θ and AA under the smoke profile, the rows of the issue) also
take a real CPU step, which checks values (indices, finite loss and gradients) too. The checks
run in one (spawned) process per available core, about 100 CPU-seconds in all; each row's
outcome is then its own test.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import suites
from harness.plan.spec import ModelSpec
from harness.training.data import DataSpec, open_data
from harness.plan.jobs import PROFILES, expand, input_size, profile
from harness.plan.overrides import Overrides
from harness.training.job import build_job_model
from models.registry import INPUT_SIZE, size_dependent


@dataclass
class Case:
    """One distinct model and the rows (suite, profile, label) whose jobs use it."""

    config: dict
    size: int
    classes: int
    unavailable: str | None
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def names(self) -> str:
        shown = "; ".join(f"{suite} ({prof}): {label}" for suite, prof, label in self.rows[:4])
        more = len(self.rows) - 4
        return shown + (f"; and {more} more" if more > 0 else "")

    @property
    def test_id(self) -> str:
        suite, prof, label = self.rows[0]
        return f"{suite}-{prof}-{label}-{self.size}px"

    @property
    def sized(self) -> bool:
        """Built for another size than the paper's for its form (a size-dependent model)."""
        m = self.config["model"]
        return size_dependent(m["attention"]) and self.size != INPUT_SIZE[m["form"]]


def _collect() -> tuple[dict[str, Case], list[tuple[str, str, str]]]:
    cases: dict[str, Case] = {}
    skipped: list[tuple[str, str, str]] = []
    for prof in PROFILES:
        for suite in suites.all_suites():
            if suite.task == "detection":
                continue
            for job in expand(suite, profile(prof), Overrides(seeds=1)):
                where = (suite.name, prof, job.label)
                if job.unavailable and job.row.available:  # declared so
                    skipped.append(where)
                    continue
                m, size = job.config["model"], input_size(job.config)
                key = json.dumps([m["arch"], m["form"], m["attention"], m["options"], size],
                                 sort_keys=True)
                classes = m["num_classes"] or job.config["data"]["num_classes"]
                case = cases.setdefault(key, Case(job.config, size, classes, job.unavailable))
                case.rows.append(where)
    return cases, skipped


# (the spawned workers get their cases with their tasks, so they need not collect them)
CASES, SKIPPED = _collect() if multiprocessing.parent_process() is None else ({}, [])
SIZED = {key: c for key, c in CASES.items() if not c.unavailable and c.sized}


def _step(case: Case, device: str) -> None:
    """Build the job's model as training does, then one SGD step and one evaluation."""
    torch.manual_seed(0)
    with torch.device(device):
        model = build_job_model(case.config, case.classes)
        x = torch.randn(2, 3, case.size, case.size)
        y = torch.tensor([0, 1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    out = model(x)
    assert out.shape == (2, case.classes), f"training output of shape {tuple(out.shape)}"
    loss = F.cross_entropy(out, y)
    loss.backward()
    if device != "meta":
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads), \
            "non-finite loss or gradient"
    model.eval()  # evaluated before the update: one step at batch 2 may blow up BN's weights
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, case.classes), f"evaluation output of shape {tuple(out.shape)}"
    if device != "meta":
        assert torch.isfinite(out).all(), "non-finite evaluation output"
    opt.step()


def _check(task: tuple[Case, str]) -> str | None:
    """The first line of what goes wrong stepping ``case`` on ``device`` (None: fine)."""
    case, device = task
    torch.set_num_threads(1)
    try:
        _step(case, device)
    except Exception as exc:  # noqa: BLE001 - any failure is the row's
        lines = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return None


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest) -> dict[tuple[str, str], str | None]:
    """Outcome of every selected (model, device) check, run in parallel."""
    tasks = [tuple(item.callspec.params[k] for k in ("key", "device"))
             for item in request.session.items
             if item.module is request.module and hasattr(item, "callspec")
             and "device" in item.callspec.params]
    tasks.sort(key=lambda t: (t[1] != "cpu", -CASES[t[0]].size))  # the longest first
    work = [(CASES[key], device) for key, device in tasks]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(cores or 1, len(tasks))
    threads = torch.get_num_threads()
    try:
        if workers <= 1:
            return dict(zip(tasks, map(_check, work)))
        # spawned, not forked: forked from pytest, the workers spent a fifth of their time in
        # the kernel, mapping and unmapping 16 KB blocks (Python 3.11's frame-stack chunks)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return dict(zip(tasks, pool.map(_check, work)))
    finally:
        torch.set_num_threads(threads)


def _params(cases: dict[str, Case], device: str) -> list:
    return [pytest.param(key, device, id=f"{c.test_id}-{device}") for key, c in cases.items()]


@pytest.mark.slow  # the module's checks, all run at the first (about 100 CPU-seconds)
@pytest.mark.parametrize(("key", "device"), _params(CASES, "meta") + _params(SIZED, "cpu"))
def test_row_builds_and_steps_at_its_input_size(
    key: str, device: str, outcomes: dict[tuple[str, str], str | None]
) -> None:
    case = CASES[key]
    if case.unavailable:
        pytest.fail(f"{case.names}: {case.unavailable}", pytrace=False)
    error = outcomes[(key, device)]
    if error:
        pytest.fail(f"{case.names} ({case.size}x{case.size}, {device}): {error}", pytrace=False)


def test_every_suite_and_profile_is_covered() -> None:
    """Every classification suite has rows under every profile; no built-in row is declared
    unavailable; the rows of the issue are among those sized off the paper's."""
    covered = {(suite, prof) for c in CASES.values() for suite, prof, _ in c.rows}
    for prof in PROFILES:
        for suite in suites.all_suites():
            if suite.task == "classification":
                assert (suite.name, prof) in covered
    assert not SKIPPED
    sized = {(s, p, label) for c in SIZED.values() for s, p, label in c.rows}
    for row in ("ResNet-50 / ge", "ResNet-101 / ge", "ResNet-50 / aa", "ResNet-101 / aa"):
        assert ("table5", "smoke", row) in sized
    for row in ("WRN-28 (w=8) / ge", "WRN-28 (w=10) / ge", "WRN-28 (w=10) / aa"):
        assert ("table11", "smoke", row) in sized


def test_size_dependent_models_record_their_jobs_input_size() -> None:
    """GE-θ and AA are built for their job's images: the model config gives the size the data
    gives (``ModelSpec.input_size``; the paper's where it records none)."""
    checked = 0
    for case in CASES.values():
        m = case.config["model"]
        if size_dependent(m["attention"]):
            assert ModelSpec(**m).input_size == case.size, case.names
            checked += 1
    assert checked >= 14  # GE and AA rows of Tables V and XI, paper/short and smoke sizes


def _image_tree(root: Path) -> None:
    from PIL import Image

    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        Image.new("RGB", (40, 30), (10, 200, 30)).save(root / cls / "0.jpg")


class _FakeCifar:
    """Stands in for torchvision's CIFAR classes (no files needed)."""

    def __init__(self, root: str, train: bool, download: bool) -> None:
        self.classes = [f"c{k}" for k in range(100)]
        self.targets = list(range(100))

    def __len__(self) -> int:
        return 100


@pytest.mark.parametrize("provider", ["synthetic", "image-folder", "imagenet", "cifar100",
                                      "cifar10"])
def test_job_input_size_is_the_data_providers(provider: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a job's data config names no image size, ``harness.plan.jobs.input_size`` gives the
    size the provider opens at: the size its model is built for."""
    import harness.training.data as data

    root = tmp_path
    if provider == "image-folder":
        _image_tree(root)
    elif provider == "imagenet":
        _image_tree(root / "train")
        _image_tree(root / "val")
    elif provider.startswith("cifar"):
        (root / ("cifar-100-python" if provider == "cifar100" else "cifar-10-batches-py")).mkdir()
        monkeypatch.setattr(data.datasets, "CIFAR100", _FakeCifar)
        monkeypatch.setattr(data.datasets, "CIFAR10", _FakeCifar)
    opened = open_data(DataSpec(provider, data_root=str(root)))
    assert opened.image_size == input_size({"data": {"provider": provider}})


def test_input_size_is_recorded_only_off_the_papers_size() -> None:
    """Jobs at the paper's input size keep their configs (and hashes); a GE-θ or AA job at
    another size records it, whether the profile, --dataset or --set data.image_size sets it;
    other models record nothing."""
    def options(name: str, prof: str, over: Overrides = Overrides(seeds=1)) -> dict:
        return {j.label: j.config["model"]["options"] for j in expand(suites.get(name),
                                                                      profile(prof), over)}

    for prof in ("paper", "short"):
        t5, t11 = options("table5", prof), options("table11", prof)
        assert "input_size" not in t5["ResNet-50 / ge"] | t11["WRN-28 (w=10) / ge"]
        assert t5["ResNet-101 / aa"]["input_size"] is None is t11["WRN-28 (w=10) / aa"][
            "input_size"]
    smoke5, smoke11 = options("table5", "smoke"), options("table11", "smoke")
    assert smoke5["ResNet-50 / ge"]["input_size"] == smoke5["ResNet-101 / aa"]["input_size"] == 64
    assert smoke11["WRN-28 (w=8) / ge"]["input_size"] == 16
    assert all("input_size" not in o for label, o in smoke5.items()
               if label.split(" / ")[1] not in ("ge", "aa"))
    folder = options("table5", "paper", Overrides(seeds=1, dataset="image-folder"))
    assert folder["ResNet-50 / ge"]["input_size"] == 32
    sized = options("table11", "smoke", Overrides(sets=("data.image_size=24",)))
    assert sized["WRN-28 (w=10) / aa"]["input_size"] == sized["WRN-28 (w=8) / ge"][
        "input_size"] == 24
