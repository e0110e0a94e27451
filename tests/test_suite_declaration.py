"""A suite is one file: found by discovery, it declares its numbering, figures and statistic.

The toy suite below is written to a folder added to the ``suites`` package's search path, as a
new ``suites/tableN.py`` would be; nothing else is touched, and it shows up in ``suites``,
``run --dry-run``, ``count`` and ``report`` with the figure it declares.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import suites
from suites.recipes import MMDET_COCO_2X
from harness.cli import app
from harness.report.figures import DRAWERS
from suites.base import FigureKind

runner = CliRunner()

TOY = '''
"""Table XCIX: a toy table, declared in this one file."""

from suites.base import FigureKind, FigureSpec, Row, Suite
from suites.recipes import CIFAR_STANDARD

SUITE = Suite(
    name="toy99",
    table="XCIX",
    title="A toy table",
    dataset="cifar100",
    form="cifar",
    task="classification",
    metrics=("params_m", "flops_g", "err"),
    recipe=CIFAR_STANDARD,
    rows=(Row("ResNet-20", "resnet20", "baseline", paper={"err": 50.0}),),
    figures=(FigureSpec(kind=FigureKind.BARS, caption="toy bars", title="toy bars (ResNet-20)",
                        xlabel="method"),),
)
'''


@pytest.fixture
def toy(tmp_path: Path) -> Iterator[suites.Suite]:
    """The toy suite, discovered from one module file; forgotten afterwards."""
    folder = tmp_path / "more_suites"
    folder.mkdir()
    (folder / "toy99.py").write_text(TOY)
    original = suites.__path__
    suites.__path__ = [*original, str(folder)]
    try:
        assert "toy99" in suites.refresh()
        yield suites.get("toy99")
    finally:
        suites.__path__ = original
        sys.modules.pop("suites.toy99", None)
        suites.refresh()


def test_a_new_suite_is_one_file(toy: suites.Suite, tmp_path: Path) -> None:
    # ordered by its numbering: after Table XVI, before the figure and the text's section
    # (suites of other papers, he2016, come after the paper's own)
    names = suites.names()
    after = names[names.index("table16") + 1:]
    assert after[:3] == ("toy99", "fig5", "infer-batch") and after[3:] == ("he2016",)
    assert suites.find("xcix") is toy

    listed = runner.invoke(app, ["suites"])
    assert listed.exit_code == 0, listed.output
    assert "toy99" in listed.stdout and "A toy table" in listed.stdout

    planned = runner.invoke(app, ["run", "toy99", "--profile", "smoke", "--dry-run"])
    assert planned.exit_code == 0, planned.output
    assert "toy99: 1 jobs" in planned.stdout and "ResNet-20" in planned.stdout

    db = str(tmp_path / "toy.sqlite")
    counted = runner.invoke(app, ["count", "--table", "XCIX", "--format", "csv", "--db", db])
    assert counted.exit_code == 0, counted.output
    assert counted.stdout.splitlines()[1].startswith("XCIX,cifar100,ResNet-20,baseline")

    out = tmp_path / "report"
    made = runner.invoke(app, ["report", "XCIX", "--db", db, "--out", str(out)])
    assert made.exit_code == 0, made.output
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Table XCIX: A toy table (toy99)" in md
    assert "![Table XCIX: toy bars](figures/toy99-bars.png)" in md
    assert (out / "figures" / "toy99-bars.png").stat().st_size > 0
    assert "not stored in this database" not in md  # its params/FLOPs were counted, stored
    assert "| counted |" in md  # ... and read back (the paper prints none for the row)


def test_the_toy_is_gone_afterwards() -> None:
    assert "toy99" not in suites.names()
    assert suites.find("XCIX") is None


def test_every_figure_kind_can_be_drawn() -> None:
    assert set(DRAWERS) == set(FigureKind)
    declared = {spec.kind for s in suites.all_suites() for spec in s.figures}
    assert declared <= set(FigureKind)


@pytest.mark.parametrize("suite", suites.all_suites(), ids=lambda s: s.name)
def test_declared_statistic_matches_the_printed_columns(suite: suites.Suite) -> None:
    """Tables that print a std column show the mean over seeds, as the paper does."""
    assert suite.statistic in ("median", "mean")
    if "std" in suite.metrics:
        assert suite.statistic == "mean"


def test_numbering_lookup_covers_every_suite() -> None:
    for s in suites.all_suites():
        assert suites.find(s.name) is s
        assert suites.find(s.table.lower()) is s
    assert suites.roman_value("XIV") == 14 and suites.roman_value("III-D") is None


def test_the_coco_tables_share_one_declaration() -> None:
    coco = [s for s in suites.all_suites() if s.dataset == "coco"]
    assert [s.table for s in coco] == ["XIV", "XV", "XVI"]
    for s in coco:
        assert s.task == "detection" and s.recipe is MMDET_COCO_2X and s.seeds == 1
        assert all(r.setting in ("Faster R-CNN", "Mask R-CNN") for r in s.rows)
        assert all(set(r.paper) == set(s.metrics) for r in s.rows)
