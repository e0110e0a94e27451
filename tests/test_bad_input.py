"""Bad input: exit code 2, one line naming the problem and the fix, no traceback, and the
database left exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store.db import ResultsDB

runner = CliRunner()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    one = root / "one-class" / "cat"
    one.mkdir(parents=True)
    (one / "a.jpg").write_bytes(b"")
    empty = root / "empty-class"
    (empty / "cat").mkdir(parents=True)
    (empty / "dog").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(empty / "cat" / "a.png")
    garbage = root / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 20)
    blocker = root / "a-file"
    blocker.write_text("x")
    db = root / "db.sqlite"
    with ResultsDB(str(db)) as rdb:  # a real database, with content, that must not change
        rdb.save_model_stats("m", 25_000_000, 4_100_000_000, 4_200_000_000, "fvcore", {})
    return {"root": root, "one": root / "one-class", "empty": empty, "garbage": garbage,
            "blocker": blocker, "db": db}


CASES = [
    (["run", "table99"], "unknown suite"),
    (["run", "table7", "--profile", "fast"], "unknown profile"),
    (["run", "table7", "--only", "colour=red"], "malformed --only"),
    (["run", "table7", "--only", "method"], "malformed --only"),
    (["run", "table7", "--only", "method=se"], "matches no row"),
    (["run", "table7", "--seeds", "0"], "--seeds must be a positive integer"),
    (["run", "table7", "--epochs", "-1"], "--epochs must be a positive integer"),
    (["run", "table7", "--batch-size", "0"], "--batch-size must be a positive integer"),
    (["run", "table7", "--gpus", "7"], "this machine has"),
    (["run", "table7", "--gpus", "first"], "--gpus"),
    (["run", "table7", "--jobs-per-gpu", "0"], "--jobs-per-gpu"),
    (["run", "table7", "--dataset", "mnist"], "mnist"),
    (["run", "table7", "--dataset", "cifar100", "--data-root", "{root}/none"], "--download"),
    (["run", "table7", "--dataset", "image-folder", "--data-root", "{root}/none"],
     "does not exist"),
    (["run", "table7", "--dataset", "image-folder", "--data-root", "{one}"], "at least 2"),
    (["run", "table7", "--dataset", "image-folder", "--data-root", "{empty}"], "no images: dog"),
    (["run", "table7", "--dataset", "image-folder", "--data-root", "{empty}/cat"],
     "holds no class folder"),
    (["run", "table7", "--dataset", "imagenet", "--data-root", "{root}/none"], "ImageNet"),
    (["run", "table7", "--batch-size", "100000"], "exceeds"),
    (["run", "table7", "--set", "model.options.reduction=7"], "does not divide the 256 channels"),
    (["run", "table7", "--set", "model.options.reduction=0"], "must be a positive integer"),
    (["run", "table7", "--set", "model.options.nope=1"], "no key 'nope'"),
    (["run", "table7", "--set", "train.lr=fast"], "train.lr is float"),
    (["run", "table7", "--set", "bogus"], "malformed --set"),
    (["run", "table7", "--set", "train.epochs=0"], "train.epochs must be positive"),
    (["run", "table7", "--set", "model.arch=resnet999"], "unknown cifar architecture"),
    (["run", "table7", "--set", "model.attention=xyz"], "unknown attention method"),
    (["run", "table11", "--only", "method=aa", "--set", "data.image_size=256"],
     "WRN-28 (w=10) / aa: AA augmented nothing"),
    (["run", "table5", "--only", "method=ge", "--set", "method=ge:model.options.input_size=32"],
     "no key 'input_size'"),
    (["run", "table5", "--only", "method=aa", "--set", "model.options.input_size=32"],
     "model.options.input_size (32) is the job's image size (64)"),
    (["run", "table7", "--backend", "spark"], "unknown backend"),
    (["run", "table7", "--ray-address", "auto"], "--ray-address needs --backend ray"),
    (["run", "table7", "--backend", "ray", "--gpus", "0"], "with --backend ray the cluster"),
    (["run", "table7", "--results-dir", "{blocker}/results"], "cannot write checkpoints"),
    (["status", "--db", "{garbage}"], "garbage.sqlite"),
    (["status", "--db", "foo://x"], "foo"),
    (["status", "table99"], "unknown suite"),
    (["count", "--table", "XX"], "unknown table"),
    (["count", "--format", "yaml"], "unknown format"),
    (["paper", "--table", "table0"], "unknown table"),
    (["report", "table99"], "table99"),
    (["report", "table7", "--format", "docx"], "docx"),
    (["report", "table7", "--out", "{blocker}/reports"], "{blocker}"),
    (["audit", "--batch-sizes", "1,two"], "--batch-sizes"),
    (["bench", "--parts", "teleport"], "unknown bench part"),
    (["bench", "--device", "tpu"], "unknown device"),
]


@pytest.mark.parametrize(("args", "words"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(
    folders: dict[str, Path], args: list[str], words: str
) -> None:
    args = [a.format(**folders) for a in args]
    words = words.format(**folders)
    uses_db = args[0] in ("run", "status", "report", "audit") and "--db" not in args
    with_db = [*args, "--db", str(folders["db"])] if uses_db else args
    before = ResultsDB(str(folders["db"])).content_hash()
    garbage = folders["garbage"].read_bytes()
    result = runner.invoke(app, with_db)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert words in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert ResultsDB(str(folders["db"])).content_hash() == before
    assert folders["garbage"].read_bytes() == garbage
