"""Plugins beyond methods (issue 14): backbones and suites from outside the repository, by
entry point or ``--plugin`` module, with the methods' rules (a name declared twice refused,
naming both; a plugin backbone recorded in its jobs' identity), run end to end through the CLI;
``count`` finds the rows ``run --add-method`` added from the database, as ``report`` does."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from typer.testing import CliRunner

import suites
from harness.cli import app
from harness.execute.options import RunOptions
from harness.execute.runner import plan
from harness.store.db import ResultsDB
from models import catalogue, plugins, registry, specs
from tests.conftest import refused_in_one_line

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

#: A --plugin backbone: two stages of torchvision's basic blocks (so "inside" methods fit).
TINY_BACKBONE = '''
from torch import nn
from torchvision.models.resnet import BasicBlock

from models.backbones import StagedNet
from models.registry import register_backbone


@register_backbone("tinynet", form="cifar")
def tinynet(num_classes: int, width: int = 8) -> StagedNet:
    stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU())
    down = nn.Sequential(nn.Conv2d(width, 2 * width, 1, stride=2, bias=False),
                         nn.BatchNorm2d(2 * width))
    stages = [nn.Sequential(BasicBlock(width, width)),
              nn.Sequential(BasicBlock(width, 2 * width, stride=2, downsample=down))]
    return StagedNet(stem, stages, [width, 2 * width], num_classes)
'''

#: A --plugin suite on that backbone (importing it registers the backbone too).
TINY_SUITE = '''
import tiny_backbone  # noqa: F401 - registers tinynet
from suites.base import Row, Suite
from suites.recipes import CIFAR_STANDARD

SUITE = Suite(name="tiny", table="Tiny", title="A user's table: tinynet with and without BA2M",
              dataset="cifar10", form="cifar", task="classification", metrics=("err",),
              recipe=CIFAR_STANDARD, seeds=1,
              rows=(Row("TinyNet", "tinynet", "baseline"), Row("TinyNet", "tinynet", "ba2m")))
'''

#: An entry point's backbone (no registration call: its entry point names it) ...
EP_BACKBONE = '''
from torch import nn

from models.backbones import StagedNet


def widenet(num_classes: int) -> StagedNet:
    stages = [nn.Sequential(nn.Conv2d(4, 4, 3, padding=1)), nn.Sequential(nn.Conv2d(4, 4, 1)),
              nn.Sequential(nn.Conv2d(4, 8, 1))]
    return StagedNet(nn.Conv2d(3, 4, 3, padding=1), stages, [4, 4, 8], num_classes)


widenet.form = "cifar"


def flat(num_classes: int) -> nn.Module:
    return nn.Linear(3, num_classes)
'''

#: ... and an entry point's suite on it (torch-free: `suites` lists it without torch).
EP_SUITE = '''
from suites.base import Row, Suite
from suites.recipes import CIFAR_STANDARD

SUITE = Suite(name="widesuite", table="Wide", title="An installed suite", dataset="cifar10",
              form="cifar", task="classification", metrics=("err",), recipe=CIFAR_STANDARD,
              seeds=1, rows=(Row("WideNet", "widenet", "baseline"),
                             Row("WideNet", "widenet", "se")))
NOT_A_SUITE = {"name": "widesuite"}
'''

BAD = {
    "dup_backbone": 'from torch import nn\nfrom models.registry import register_backbone\n\n'
                    '@register_backbone("resnet20a", form="cifar")\n'
                    'def mine(num_classes: int) -> nn.Module:\n    return nn.Identity()\n',
    "dup_suite": 'from dataclasses import replace\nimport suites.table6 as t\n\n'
                 'SUITE = replace(t.SUITE, table="VI-mine")\n',
    "not_suite": 'SUITE = "table6, please"\n',
    "broken_suite": 'import no_such_dependency_xyz\n',
}

ENTRY_POINTS = {catalogue.BACKBONE_GROUP: {"widenet": "ep_backbone:widenet"},
                catalogue.SUITE_GROUP: {"widesuite": "ep_suite:SUITE"},
                catalogue.ATTENTION_GROUP: {"eca": "eca_attention:ECA"}}


def _forget() -> None:
    catalogue.entry_point_methods.cache_clear()
    catalogue.entry_point_backbones.cache_clear()
    plugins.distributions.cache_clear()
    suites.refresh()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A package of plugin parts as if pip-installed (its metadata declares a backbone, a
    suite and examples/eca's method), with the --plugin modules beside it; on the path of
    this process and of every process it starts."""
    site = tmp_path_factory.mktemp("parts")
    info = site / "tiny_parts-0.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-parts\nVersion: 0.2\n")
    paths = [str(ROOT / "examples" / "eca" / "src"), str(site)]
    old_path, old_env = list(sys.path), os.environ.get("PYTHONPATH", "")
    sys.path[:0] = paths
    _forget()
    # the example installed already (as docs/extending.md has users do, or built in place):
    # it declares eca itself, and a second declaration would be refused
    installed = "eca" in catalogue.entry_point_methods()
    groups = {g: eps for g, eps in ENTRY_POINTS.items()
              if not (installed and g == catalogue.ATTENTION_GROUP)}
    (info / "entry_points.txt").write_text("".join(
        f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
        for g, eps in groups.items()))
    (info / "top_level.txt").write_text("ep_backbone\nep_suite\neca_attention\n")
    for name, text in {"tiny_backbone": TINY_BACKBONE, "tiny_suite": TINY_SUITE,
                       "ep_backbone": EP_BACKBONE, "ep_suite": EP_SUITE, **BAD}.items():
        (site / f"{name}.py").write_text(textwrap.dedent(text))
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, old_env])
    _forget()
    before = dict(specs.ATTENTIONS), dict(specs.BACKBONES)
    yield site
    sys.path[:] = old_path
    os.environ["PYTHONPATH"] = old_env
    for table, saved in zip((specs.ATTENTIONS, specs.BACKBONES), before):
        for key in [k for k, v in table.items()  # this module's plugins; built-ins stay
                    if k not in saved and not getattr(v, "builtin", False)]:
            del table[key]
    _forget()


@pytest.fixture(autouse=True)
def _no_env_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(catalogue.PLUGINS_ENV, "")  # load_plugins sets it; restored after


# --------------------------------------------------------------------------- found, recorded
def test_entry_point_backbone_and_suite_are_found_and_recorded(site: Path,
                                                                tmp_path: Path) -> None:
    """The installed suite is listed and planned without --plugin; its jobs record the
    backbone (kind, form, version, source hash); built-in jobs have no record; the suite
    command lists it."""
    assert "widesuite" in suites.names() and catalogue.has_architecture("cifar", "widenet")
    jobs = plan("widesuite", RunOptions(profile="smoke", db_url=str(tmp_path / "d")))
    assert [j.unavailable for j in jobs] == [None, None]
    record = jobs[0].config["model"]["plugins"]
    assert record == [{"kind": "backbone", "name": "widenet", "form": "cifar",
                       "module": "ep_backbone", "object": "ep_backbone:widenet",
                       "version": "tiny-parts 0.2", "source": record[0]["source"]}]
    assert registry.num_stages("widenet", "cifar") == 3
    assert jobs[1].config["model"]["options"]["stages"] == [1, 2, 3]
    out = runner.invoke(app, ["suites"])
    assert out.exit_code == 0 and "widesuite" in out.output and "Wide" in out.output
    (site / "ep_backbone.py").write_text((site / "ep_backbone.py").read_text() + "# changed\n")
    with pytest.raises(registry.ModelConfigError, match="changed since this job was planned"):
        plugins.ensure_plugins(record)


# ----------------------------------------------------------------------------- bad input
BAD_CASES = [
    (["run", "table6", "--plugin", "dup_backbone"],
     "backbone 'resnet20a' (cifar) is registered twice: by built-in (models.registry) and by "
     "--plugin dup_backbone"),
    (["run", "table6", "--plugin", "dup_suite"],
     "suite 'table6' is declared twice: by built-in (suites.table6) and by --plugin dup_suite"),
    (["run", "table6", "--plugin", "not_suite"],
     "--plugin not_suite: SUITE is a str, not a suites.Suite"),
    (["run", "table6", "--plugin", "broken_suite"],
     "plugin module 'broken_suite' does not import (No module named 'no_such_dependency_xyz')"),
    (["count", "--table", "table6", "--plugin", "broken_suite"], "does not import"),
]


@pytest.mark.parametrize(("args", "message"), BAD_CASES, ids=[b[1][:28] for b in BAD_CASES])
def test_bad_parts_are_one_line_and_change_nothing(site: Path, tmp_path: Path,
                                                   args: list[str], message: str) -> None:
    refused_in_one_line(tmp_path, lambda db: runner.invoke(app, [*args, "--db", str(db)]),
                        message)


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, group: str, name: str,
                       *values: str) -> None:
    fake = {name: tuple(EntryPoint(name, v, group) for v in values)}
    real = catalogue.group_entry_points
    monkeypatch.setattr(suites, "group_entry_points",
                        lambda g: fake if g == group else real(g))
    monkeypatch.setattr(catalogue, "entry_point_backbones",
                        lambda: fake if group == catalogue.BACKBONE_GROUP else {})
    monkeypatch.setattr(plugins, "entry_point_backbones", catalogue.entry_point_backbones)
    suites.refresh()


ENTRY_CASES = [
    (catalogue.SUITE_GROUP, "mine", ("ep_suite:Missing",), "mine",
     "names a missing object: ep_suite has no 'Missing'"),
    (catalogue.SUITE_GROUP, "mine", ("ep_suite:NOT_A_SUITE",), "mine",
     "SUITE is a dict, not a suites.Suite"),
    (catalogue.SUITE_GROUP, "mine", ("broken_suite:SUITE",), "mine",
     "plugin module 'broken_suite' does not import"),
    (catalogue.SUITE_GROUP, "table6", ("ep_suite:SUITE",), "table6",
     "suite 'table6' is declared twice: by built-in (suites.table6) and by entry point table6"),
    (catalogue.SUITE_GROUP, "mine", ("ep_suite:SUITE", "tiny_suite:SUITE"), "table6",
     "suite 'mine' is declared twice: by entry point mine = ep_suite:SUITE"),
    (catalogue.BACKBONE_GROUP, "resnet20a", ("ep_backbone:widenet",), "he2016",
     "backbone 'resnet20a' is registered twice: by built-in and by entry point resnet20a"),
    (catalogue.BACKBONE_GROUP, "widenet", ("ep_backbone:gone",), "widesuite",
     "names a missing object: ep_backbone has no 'gone'"),
    (catalogue.BACKBONE_GROUP, "widenet", ("ep_backbone:flat",), "widesuite",
     "made a Linear without stages"),
]


@pytest.mark.parametrize(("group", "name", "values", "suite", "message"), ENTRY_CASES,
                         ids=[c[4][:28] for c in ENTRY_CASES])
def test_bad_entry_points_are_one_line(site: Path, monkeypatch: pytest.MonkeyPatch,
                                       group: str, name: str, values: tuple[str, ...],
                                       suite: str, message: str) -> None:
    _fake_entry_points(monkeypatch, group, name, *values)
    specs.BACKBONES.pop(("cifar", name), None)  # loaded by an earlier test
    try:
        out = runner.invoke(app, ["run", suite, "--profile", "smoke", "--dry-run"])
    finally:
        specs.BACKBONES.pop(("cifar", name), None)
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.output, lines


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_plugin_suite_and_backbone_run_count_and_report(site: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A --plugin suite on a --plugin backbone, with ECA (an entry point) added, through the
    CLI on the local backend (spawned workers re-import the plugins from the jobs' configs).
    `count --table tiny` then counts the added row without --add-method (found from the
    database's jobs, as the report finds it), and the report shows it."""
    db, common = str(tmp_path / "db.sqlite"), ["--plugin", "tiny_suite"]
    run = runner.invoke(app, ["run", "tiny", "--profile", "smoke", *common, "--add-method",
                              "eca", "--only", "method=baseline|eca", "--db", db, "--gpus",
                              "none", "--no-progress", "--results-dir", str(tmp_path / "r")])
    assert run.exit_code == 0, run.output
    assert "2 completed, 0 failed" in run.output
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # count 3 tiny models here, no pool
    count = runner.invoke(app, ["count", "--table", "tiny", *common, "--db", db,
                                "--format", "csv"])
    assert count.exit_code == 0, count.output
    methods = [line.split(",")[3] for line in count.output.splitlines()
               if line.startswith("Tiny,")]
    assert methods == ["baseline", "ba2m", "eca"], count.output
    again = runner.invoke(app, ["count", "--table", "tiny", *common, "--db", db,
                                "--add-method", "eca", "--format", "csv"])
    assert again.exit_code == 0 and again.output.count("\nTiny,cifar10,TinyNet,eca,") == 1
    rep = runner.invoke(app, ["report", "tiny", *common, "--db", db, "--out",
                              str(tmp_path / "rep"), "--no-figures"])
    assert rep.exit_code == 0, rep.output
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "| TinyNet | eca (added) |" in text and "| TinyNet | baseline |" in text
    assert "are not stored in this database" not in text
    with ResultsDB(db, read_only=True) as rdb:
        records = [c["model"]["plugins"] for c in rdb.jobs_frame()["config"]]
    assert [[r["name"] for r in rs] for rs in records] == [["tinynet"], ["tinynet", "eca"]]
