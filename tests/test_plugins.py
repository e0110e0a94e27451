"""Plugins (issue 14): the catalogue agrees with the zoo, ``suites`` counts without torch,
plugin methods are found three ways, recorded in their jobs' identity, refused clearly when
broken, and put through a paper table by ``run --add-method`` end to end (examples/eca)."""

from __future__ import annotations

import os
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import suites
from harness.cli import app
from harness.execute.options import RunOptions
from harness.execute.runner import plan
from harness.plan.jobs import PROFILES, expand
from harness.plan.sizes import suite_size
from harness.store.db import ResultsDB
from models import catalogue, plugins, registry, specs
from tests.conftest import refused_in_one_line

ROOT = Path(__file__).resolve().parents[1]
ECA = ROOT / "examples" / "eca"
runner = CliRunner()

#: A --plugin module: registers "boom", whose forward raises (its jobs FAIL, the suite goes on).
BOOM = '''
import torch
from torch import nn
from models.registry import register_attention

@register_attention("boom", position="between")
class Boom(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        raise RuntimeError("boom: this plugin always fails")
'''

#: Broken plugins, one class each, named as pkg.module:Class.
BROKEN = '''
import torch
from torch import nn
from models.registry import register_attention

class NotModule:
    def __init__(self, channels: int) -> None:
        pass

class NoChannels(nn.Module):
    def __init__(self) -> None:
        super().__init__()

class Shrinks(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, x):
        return x[:, :, ::2]

class Untraceable(nn.Module):
    position = "between"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        if torch.jit.is_tracing():
            raise RuntimeError("cannot be traced")
        return x * self.w[:, None, None]
'''

DUPLICATE = '''
from torch import nn
from models.registry import register_attention

@register_attention("se", position="inside")
class MySE(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
'''


def _dist_info(site: Path) -> None:
    """The example's installed metadata (what pip writes), from its pyproject.toml; nothing
    when the example is installed already (as docs/extending.md has users do, or built in
    place: its metadata beside its source)."""
    catalogue.entry_point_methods.cache_clear()
    if "eca" in catalogue.entry_point_methods():
        return
    project = tomllib.loads((ECA / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text("".join(
        f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in groups.items()))
    (info / "top_level.txt").write_text("eca_attention\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """examples/eca as if pip-installed (its source and its metadata on the path, in this
    process and every process it starts), plus this module's plugin files."""
    site = tmp_path_factory.mktemp("site")
    paths = [str(ECA / "src"), str(site)]
    old_path, old_env = list(sys.path), os.environ.get("PYTHONPATH", "")
    sys.path[:0] = paths
    _dist_info(site)
    for name, text in (("boom_plugin", BOOM), ("broken_plugin", BROKEN),
                       ("duplicate_plugin", DUPLICATE)):
        (site / f"{name}.py").write_text(textwrap.dedent(text))
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, old_env])
    catalogue.entry_point_methods.cache_clear()
    plugins.distributions.cache_clear()
    before = dict(specs.ATTENTIONS)
    yield site
    sys.path[:] = old_path
    os.environ["PYTHONPATH"] = old_env
    catalogue.entry_point_methods.cache_clear()
    plugins.distributions.cache_clear()
    for name in [n for n, spec in specs.ATTENTIONS.items()  # this module's plugins only:
                 if n not in before and not spec.builtin]:  # built-ins loaded meanwhile stay
        del specs.ATTENTIONS[name]


@pytest.fixture(autouse=True)
def _no_env_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(catalogue.PLUGINS_ENV, "")  # load_plugins sets it; restored after


# ------------------------------------------------------------------------- the catalogue
def test_catalogue_names_what_the_registry_builds() -> None:
    built = {(f, a): registry.num_stages(a, f) for f, a in registry.architectures()}
    assert catalogue.ARCHITECTURES == built
    import models.methods  # noqa: F401 - every built-in registers itself

    builtin = {s.name: s.module for s in specs.ATTENTIONS.values() if s.builtin}
    assert builtin == catalogue.BUILTIN_METHODS


def test_suite_sizes_equal_the_expanded_jobs() -> None:
    """``suites``' counts without torch equal the jobs expand makes (seeds multiply every
    config, so one seed per profile checks every row; one suite at full seeds checks that)."""
    for suite in suites.all_suites():
        for prof in PROFILES.values():
            one = replace(prof, seeds=1)
            jobs = expand(suite, one)
            size = suite_size(suite, one)
            assert (size.jobs, size.runnable) == (
                len(jobs), sum(j.unavailable is None for j in jobs)), (suite.name, prof.name)
    t11 = suites.get("table11")
    assert suite_size(t11, PROFILES["paper"]).jobs == len(expand(t11, PROFILES["paper"]))


# ---------------------------------------------------------------------------- the example
def test_the_example_declares_its_entry_point_and_is_eca(site: Path) -> None:
    project = tomllib.loads((ECA / "pyproject.toml").read_text())["project"]
    assert project["entry-points"][catalogue.ATTENTION_GROUP] == {"eca": "eca_attention:ECA"}
    assert "eca" in catalogue.entry_point_methods()
    spec = registry.attention_spec("eca")
    assert spec.position == "inside" and spec.origin.startswith("entry point eca")
    from eca_attention import ECA as Eca, eca_kernel

    assert [eca_kernel(c) for c in (16, 64, 256, 512, 2048)] == [3, 3, 5, 5, 7]
    import torch

    x = torch.randn(2, 64, 4, 4)
    assert Eca(64)(x).shape == x.shape and Eca(64).conv.kernel_size == (3,)


def test_methods_lists_builtins_and_plugins(site: Path) -> None:
    out = runner.invoke(app, ["methods", "--plugin", "boom_plugin", "--format", "csv"])
    assert out.exit_code == 0, out.output
    lines = {line.split(",")[0]: line for line in out.output.splitlines()}
    assert "built-in" in lines["se"] and "reduction=16" in lines["se"]
    assert "entry point eca = eca_attention:ECA (eca-attention 0.1.0)" in lines["eca"]
    assert "gamma=2" in lines["eca"] and "--plugin boom_plugin" in lines["boom"]


# -------------------------------------------------------------------------- job identity
def test_plugin_jobs_record_the_plugin_and_change_with_it(site: Path, tmp_path: Path) -> None:
    mod = site / "changing_plugin.py"
    mod.write_text("from torch import nn\nclass Gate(nn.Module):\n"
                   "    def __init__(self, channels: int, k: int = 3) -> None:\n"
                   "        super().__init__()\n    def forward(self, x):\n        return x\n")
    opts = RunOptions(profile="smoke", add_methods=("changing_plugin:Gate",),
                      only="method=ba2m|changing_plugin:Gate", db_url=str(tmp_path / "d"))
    first = {j.row.method: j for j in plan("table6", opts)}
    model = first["changing_plugin:Gate"].config["model"]
    assert model["options"]["k"] == 3 and model["plugins"][0]["object"] == \
        "changing_plugin:Gate"
    assert "plugins" not in first["ba2m"].config["model"]
    mod.write_text(mod.read_text() + "# changed\n")
    again = {j.row.method: j for j in plan("table6", opts)}
    assert again["ba2m"].config_hash == first["ba2m"].config_hash
    assert again["changing_plugin:Gate"].config_hash != first["changing_plugin:Gate"].config_hash
    with pytest.raises(registry.ModelConfigError, match="changed since this job was planned"):
        plugins.ensure_plugins(model["plugins"])


def test_a_plugin_fvcore_cannot_trace_keeps_its_params(site: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin model fvcore cannot trace gets its params and the reason; a model of built-in
    parts that fvcore cannot trace still fails loudly (a bug of the zoo or the counter)."""
    from harness.costs import cache, counting
    from harness.costs.compare import cost_row
    from harness.plan.spec import ModelSpec

    spec = ModelSpec("resnet20", "cifar", 10, "broken_plugin:Untraceable",
                     plugins=plugins.plugin_records("broken_plugin:Untraceable"))
    counts = next(iter(cache.ensure_counts([spec], workers=1).values()))
    assert counts.params > 0 and "cannot be traced" in counts.flops_error
    suite = suites.get("table1")
    row = next(r for r in suite.rows if r.method == "baseline")
    cost = cost_row(suite, row, counts)
    assert cost.flops_g is None and cost.reason.startswith("FLOPs not counted: RuntimeError")

    def untraceable(*args: object) -> None:
        raise RuntimeError("fvcore cannot trace this")

    monkeypatch.setattr(counting, "_trace", untraceable)
    builtin = ModelSpec("resnet20a", "cifar", 10, "se", {"reduction": 3})
    with pytest.raises(RuntimeError, match="fvcore cannot trace this"):
        cache.ensure_counts([builtin], workers=1)
    model = registry.build_model("resnet20", form="cifar", num_classes=10)
    assert counting.count(model, 16, plugin=True).flops_error.startswith("RuntimeError")


# ----------------------------------------------------------------------------- bad input
BAD = [
    (["--plugin", "no_such_plugin_mod"], "plugin module 'no_such_plugin_mod' does not import"),
    (["--add-method", "broken_plugin:NotModule"], "is not an nn.Module"),
    (["--add-method", "broken_plugin:NoChannels"], "does not accept channels"),
    (["--add-method", "broken_plugin:Shrinks"], "changes the tensor's shape"),
    (["--add-method", "broken_plugin:Missing"], "broken_plugin has no 'Missing'"),
    (["--plugin", "duplicate_plugin"], "'se' is registered twice: by built-in "
                                       "(models.methods.se) and by --plugin duplicate_plugin"),
    (["--add-method", "nosuchmethod"], "unknown attention method 'nosuchmethod'"),
    (["--add-method", "se"], "every backbone of table6 already has a se row"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[b[1][:30] for b in BAD])
def test_bad_plugins_are_one_line_and_change_nothing(site: Path, tmp_path: Path,
                                                     args: list[str], message: str) -> None:
    refused_in_one_line(tmp_path, lambda db: runner.invoke(
        app, ["run", "table6", "--db", str(db), "--no-progress", *args]), message)


def test_an_entry_point_naming_a_missing_object_or_twice(monkeypatch: pytest.MonkeyPatch,
                                                         site: Path) -> None:
    from importlib.metadata import EntryPoint

    group = catalogue.ATTENTION_GROUP
    fake = {"ghost": (EntryPoint("ghost", "eca_attention:Ghost", group),),
            "twin": (EntryPoint("twin", "eca_attention:ECA", group),
                     EntryPoint("twin", "boom_plugin:Boom", group))}
    monkeypatch.setattr(plugins, "entry_point_methods", lambda: fake)
    monkeypatch.setattr(catalogue, "entry_point_methods", lambda: fake)
    with pytest.raises(registry.ModelConfigError, match="names a missing object"):
        registry.attention_spec("ghost")
    with pytest.raises(registry.ModelConfigError, match="'twin' is registered twice"):
        registry.attention_spec("twin")
    out = runner.invoke(app, ["run", "table6", "--add-method", "ghost", "--dry-run"])
    assert out.exit_code == 2 and "eca_attention has no 'Ghost'" in out.output


def test_add_method_needs_a_table_that_compares_methods() -> None:
    out = runner.invoke(app, ["run", "table7", "--add-method", "se", "--dry-run"])
    assert out.exit_code == 2 and "table7 has no baseline rows" in out.output


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_eca_through_table6_beside_ba2m(site: Path, tmp_path: Path) -> None:
    """The example through the CLI: ECA (an entry point) and a --plugin module whose forward
    raises, added to Table VI; the failing job FAILS with its message, ECA's completes, and
    the markdown report shows ECA's row marked as added, beside BA²M's, with its gain row.
    (BA²M's own row is left pending: training it too would only add time.)"""
    db = str(tmp_path / "db.sqlite")
    run = runner.invoke(app, ["run", "table6", "--profile", "smoke", "--add-method", "eca",
                              "--plugin", "boom_plugin", "--add-method", "boom",
                              "--only", "method=eca|boom", "--db", db, "--gpus", "none",
                              "--no-progress", "--results-dir", str(tmp_path / "results")])
    assert run.exit_code == 1, run.output  # boom's job failed
    assert "1 completed, 1 failed" in run.output
    assert "FAILED ResNet-50 / boom: RuntimeError: boom: this plugin always fails" in run.output
    status = runner.invoke(app, ["status", "table6", "--db", db])
    assert "1 completed" in status.output and "this plugin always fails" in status.output
    rep = runner.invoke(app, ["report", "table6", "--db", db, "--out", str(tmp_path / "rep"),
                              "--no-figures", "--plugin", "boom_plugin"])
    assert rep.exit_code == 0, rep.output
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "| ResNet-50 | ba2m |" in text and "| ResNet-50 | eca (added) |" in text
    assert "| ResNet-50 | boom (added) |" in text
    with ResultsDB(db, read_only=True) as rdb:
        configs = {c["model"]["attention"]: c for c in rdb.jobs_frame()["config"]}
    assert configs["eca"]["model"]["plugins"][0]["version"] == "eca-attention 0.1.0"
    assert configs["eca"]["model"]["options"]["gamma"] == 2


@pytest.mark.ray
@pytest.mark.slow
def test_eca_on_ray_in_another_process(site: Path, tmp_path: Path) -> None:
    """The example through the CLI on the Ray backend: a Ray task, a process of its own, finds
    the plugin (its entry point, named ``eca``) from its job's config. He et al.'s ResNet-20:
    the smallest backbone with a baseline row."""
    pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    db = str(tmp_path / "db.sqlite")
    out = runner.invoke(app, ["run", "he2016", "--profile", "smoke", "--add-method", "eca",
                              "--only", "backbone=ResNet-20,method=eca", "--backend", "ray",
                              "--db", db, "--results-dir", str(tmp_path / "results"),
                              "--no-progress"])
    assert out.exit_code == 0, out.output
    assert "1 completed, 0 failed" in out.output
    with ResultsDB(db, read_only=True) as rdb:
        attempts = rdb.attempts_frame()
        config = rdb.jobs_frame()["config"][0]
    assert attempts["note"].str.contains("ray task").all()
    assert config["model"]["plugins"][0]["version"] == "eca-attention 0.1.0"
