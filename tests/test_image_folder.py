"""Image folders as people have them: train/ and val/ (or test/) splits, the class count
taken from the data (and recorded in the job), labels that name what is built, and one-line
errors for folders that cannot be used. Tiny PNG trees in tmp_path: a few seconds in all."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import suites
from harness.cli import app
from harness.errors import UserError
from harness.execute.options import RunOptions
from harness.execute.runner import plan
from harness.plan.jobs import arch_name, expand, job_label, profile, runtime_config
from harness.plan.overrides import Overrides
from harness.training.data import DatasetLayoutError, DataSpec, open_data
from harness.training.job import build_job_model, open_job_data

cli = CliRunner()


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (i * 30, 0, 0)).save(folder / f"{i}.png")


def _classes(root: Path, names: tuple[str, ...], n: int) -> Path:
    for name in names:
        _images(root / name, n)
    return root


def _one_line_exit_2(args: list[str], *words: str) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert all(w in lines[0] for w in words), lines[0]


# ----------------------------------------------------------------------------- the layouts
def test_train_and_val_folders_are_the_splits(tmp_path: Path) -> None:
    _classes(tmp_path / "train", ("ant", "bee", "cat"), 4)
    _classes(tmp_path / "val", ("ant", "bee", "cat"), 2)
    _classes(tmp_path / "test", ("ant", "bee", "cat"), 1)  # val/ is preferred over test/
    (tmp_path / ".ipynb_checkpoints").mkdir()
    d = open_data(DataSpec("image-folder", str(tmp_path), image_size=16))
    assert d.classes == ("ant", "bee", "cat")
    assert (d.train_len, d.val_len) == (12, 6)
    assert {Path(p).parts[-3] for p, _ in d.train.base.samples} == {"train"}
    assert {Path(p).parts[-3] for p, _ in d.val.base.samples} == {"val"}
    assert next(iter(d.val_loader(6)))[0].shape == (6, 3, 16, 16)


def test_test_folder_when_no_val_and_one_folder_still_split(tmp_path: Path) -> None:
    split = tmp_path / "split"
    _classes(split / "train", ("a", "b"), 3)
    _classes(split / "test", ("a", "b"), 2)
    d = open_data(DataSpec("image-folder", str(split)))
    assert (d.train_len, d.val_len, d.classes) == (6, 4, ("a", "b"))
    assert {Path(p).parts[-3] for p, _ in d.val.base.samples} == {"test"}
    one = _classes(tmp_path / "one", ("a", "b", ".hidden"), 5)
    d = open_data(DataSpec("image-folder", str(one)))  # 80/20 of each class, hidden ignored
    assert (d.train_len, d.val_len, d.classes) == (8, 2, ("a", "b"))


@pytest.mark.parametrize(("layout", "words"), [
    ({"train": ("a", "b", "c"), "val": ("a", "b", "d")},
     ("train/ and val/ hold different classes", "only in train/: c", "only in val/: d",
      "give both the same class folders")),
    ({"train": ("a", "b")}, ("has train/ but no val/ or test/", "/train to hold out 20%")),
    ({"val": ("a", "b"), "test": ("a", "b")}, ("has val/ but no train/", "add train/")),
    ({"train": ("a", "b"), "test": ()}, ("test holds no class folder",)),
    ({}, ("holds no class folder", "one sub-folder of images per class")),
])
def test_unusable_layouts_are_one_line(tmp_path: Path, layout: dict[str, tuple[str, ...]],
                                       words: tuple[str, ...]) -> None:
    for split, names in layout.items():
        (tmp_path / split).mkdir()
        _classes(tmp_path / split, names, 2)
    _images(tmp_path, 1)  # a stray image beside the splits changes nothing
    with pytest.raises(DatasetLayoutError) as err:
        open_data(DataSpec("image-folder", str(tmp_path)))
    assert "\n" not in str(err.value)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_bad_folders_through_the_cli_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    _images(empty, 2)  # images, but no class folder
    run = ["run", "table7", "--dataset", "image-folder", "--db", str(tmp_path / "db.sqlite")]
    _one_line_exit_2([*run, "--data-root", str(empty)], "holds no class folder")
    _one_line_exit_2([*run, "--dry-run", "--data-root", str(empty)], "holds no class folder")
    _classes(tmp_path / "mixed" / "train", ("a", "b"), 2)
    _classes(tmp_path / "mixed" / "val", ("a", "c"), 2)
    _one_line_exit_2([*run, "--data-root", str(tmp_path / "mixed")], "only in val/: c")
    assert not (tmp_path / "db.sqlite").exists()


# ----------------------------------------------------------------------------- class count
def test_class_count_comes_from_the_folder(tmp_path: Path) -> None:
    """A 3-class folder under a CIFAR-100 suite records (and builds) a 3-way head; a folder
    with another class count makes other jobs; the data checks the count it was planned for."""
    three = _classes(tmp_path / "three", ("a", "b", "c"), 3)
    four = _classes(tmp_path / "four", ("a", "b", "c", "d"), 3)
    assert suites.get("table7").dataset == "cifar100"

    def jobs(root: Path) -> list:
        return plan("table7", RunOptions(profile="smoke", dataset="image-folder",
                                         data_root=str(root)))

    job = jobs(three)[0]
    assert job.config["model"]["num_classes"] == job.config["data"]["num_classes"] == 3
    config = runtime_config(job.config, str(three), False)
    net = build_job_model(config, open_job_data(config).num_classes)
    assert net.fc.out_features == 3
    assert {j.config_hash for j in jobs(three)}.isdisjoint(j.config_hash for j in jobs(four))
    with pytest.raises(ValueError, match="has 4 classes, but num_classes=3"):
        open_job_data(runtime_config(job.config, str(four), False))
    with pytest.raises(UserError, match="image-folder needs --data-root"):
        plan("table7", RunOptions(profile="smoke", dataset="image-folder"))


def test_builtin_datasets_keep_their_class_counts_and_hashes() -> None:
    """Providers with a fixed count are never opened to plan; their jobs' identities stay."""
    def never(data: dict) -> int:
        raise AssertionError(f"opened {data}")

    t6 = expand(suites.get("table6"), profile("paper"), count_classes=never)
    assert t6[0].config["model"]["num_classes"] == 100 and "num_classes" not in t6[0].config[
        "data"]
    assert t6[0].config_hash == "55baf1084dc841e8"  # as before image folders counted classes
    c10 = expand(suites.get("table6"), profile("paper"), Overrides(dataset="cifar10"),
                 count_classes=never)
    assert c10[0].config["model"]["num_classes"] == 10
    smoke = expand(suites.get("table7"), profile("smoke"), count_classes=never)
    assert smoke[0].config["model"]["num_classes"] == smoke[0].config["data"]["num_classes"] == 10
    counted: list[str] = []
    folder = expand(suites.get("table6"), profile("paper"), Overrides(dataset="image-folder"),
                    count_classes=lambda data: counted.append(data["provider"]) or 7)
    assert counted == ["image-folder"]  # once per run, not per job
    assert {j.config["model"]["num_classes"] for j in folder} == {7}


# ----------------------------------------------------------------------------- labels
def test_labels_name_what_the_config_builds() -> None:
    t6, t7 = suites.get("table6"), suites.get("table7")
    paper = profile("paper")
    assert all(j.label == j.row.label for j in expand(t6, paper, Overrides(seeds=1)))
    r20 = expand(t6, paper, Overrides(seeds=1, only="method=baseline",
                                      sets=("model.arch=resnet20",)))
    assert [j.label for j in r20] == ["ResNet-20 / baseline"]
    r101 = expand(t7, profile("smoke"), Overrides(sets=("model.arch=resnet101",)))
    assert [j.label for j in r101] == ["ResNet-101 / ba2m / inside", "ResNet-101 / ba2m / between"]
    se = expand(t6, paper, Overrides(seeds=1, only="method=baseline",
                                     sets=("model.attention=se",)))
    assert se[0].label == "ResNet-50 / se"
    assert job_label(t6.rows[0], {"task": "detection"}) == t6.rows[0].label
    assert (arch_name("resnet50"), arch_name("preresnet56"), arch_name("mobilenetv2"),
            arch_name("new_net")) == ("ResNet-50", "PreResNet-56", "MobileNetv2", "new_net")


def test_dry_run_shows_the_built_backbone() -> None:
    result = cli.invoke(app, ["run", "table6", "--dry-run", "--only", "method=baseline",
                              "--set", "model.arch=resnet20"])
    assert result.exit_code == 0, result.output
    assert "ResNet-20 / baseline" in result.output and "ResNet-50" not in result.output
