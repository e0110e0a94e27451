"""Counting in the paper's convention and `ba2m-bench count`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import suites
from harness.cli import app
from harness.costs.compare import agrees, cost_table, known_deviations
from harness.costs.counting import count
from models import build_model

runner = CliRunner()

#: Baselines whose standard definition reproduces the paper (calibration note).
BASELINES = ["I", "II", "XII"]


@pytest.fixture(scope="module")
def counted() -> None:
    """Every runnable row of every suite counted once, in one pool of processes, for the tests
    that count (marked slow by tests/conftest.py): their cost tables then read the counts this
    process remembers (harness.costs.cache) instead of each starting a pool of its own."""
    cost_table(suites.all_suites())


def test_attention_products_are_counted_and_fused_equals_reference() -> None:
    fast = count(build_model("resnet50", form="cifar", attention="ba2m", gsa_impl="sdpa"), 32)
    ref = count(build_model("resnet50", form="cifar", attention="ba2m", gsa_impl="matmul"), 32)
    assert fast.macs == ref.macs
    assert fast.by_operator["scaled_dot_product_attention"] == ref.by_operator["bmm"] > 0
    assert fast.fvcore_total < fast.macs  # fvcore alone calls fused attention free


@pytest.mark.usefixtures("counted")
@pytest.mark.parametrize("table", BASELINES)
def test_counted_baselines_equal_the_paper_within_one_percent(table: str) -> None:
    suite = next(s for s in suites.all_suites() if s.table == table)
    rows = [r for r in cost_table([suite]) if r.method == "baseline"]
    assert rows
    for r in rows:
        for ours, paper in ((r.params_m, r.paper_params_m), (r.flops_g, r.paper_flops_g)):
            if paper is not None:
                assert agrees(ours, paper), (r.backbone, ours, paper)


@pytest.mark.usefixtures("counted")
def test_block_subsets_grow_with_blocks() -> None:
    rows = {r.setting: r for r in cost_table([suites.get("table13")])}
    assert rows["blocks=1"].params_m < rows["blocks=1+2"].params_m < rows["blocks=1+2+3"].params_m
    assert rows["blocks=1+2+3"].params_m < rows["blocks=1+2+3+4"].params_m
    assert rows["blocks=1"].flops_g < rows["blocks=1+2"].flops_g


@pytest.mark.usefixtures("counted")
def test_r_sweep_shrinks_as_r_grows() -> None:
    rows = [r for r in cost_table([suites.get("table8")])]
    params = [r.params_m for r in rows]
    assert params == sorted(params, reverse=True)


@pytest.mark.usefixtures("counted")
def test_every_known_deviation_is_needed() -> None:
    """A stale explanation would hide a real change: every entry must cover a deviating row."""
    from harness.costs.compare import unused_deviations

    rows = cost_table([s for s in suites.all_suites() if s.table in
                       ("I", "II", "V", "VI", "VIII", "X", "XI", "XII")])
    assert not [d.reason for d in unused_deviations(rows)]
    assert len(known_deviations()) >= 10


@pytest.mark.usefixtures("counted")
def test_count_check_passes_and_json_has_the_columns(tmp_path) -> None:
    result = runner.invoke(app, ["count", "--check", "--format", "json",
                                 "--db", str(tmp_path / "counts.sqlite")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    keys = {"table", "dataset", "backbone", "method", "setting", "params_m", "flops_g",
            "fvcore_total_g", "paper_params_m", "paper_flops_g", "status", "reason"}
    assert keys <= set(rows[0])
    statuses = {r["status"] for r in rows}
    assert "mismatch" not in statuses and {"match", "deviation", "counted"} <= statuses
    assert all(r["reason"] for r in rows if r["status"] in ("deviation", "unavailable"))
    assert {r["table"] for r in rows} >= {"I", "II", "V", "VI", "VII", "VIII", "IX", "X", "XI",
                                          "XII", "XIII"}


@pytest.mark.usefixtures("counted")
def test_count_one_table_as_csv() -> None:
    result = runner.invoke(app, ["count", "--table", "VII", "--format", "csv"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("table,dataset,backbone,method,setting")
    assert len(result.stdout.splitlines()) == 3


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["count", "--table", "XX"], "unknown table"),
        (["count", "--format", "yaml"], "unknown format"),
    ],
)
def test_count_bad_input_is_one_line(args: list[str], words: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert words in result.output and len(result.output.strip().splitlines()) == 1
