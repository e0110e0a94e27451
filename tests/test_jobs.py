"""Suite -> jobs: counts, hashes, profiles, filters."""

from __future__ import annotations

from dataclasses import replace

import pytest

import suites
from harness.errors import UserError
from harness.plan.jobs import expand, not_comparable_reason, parse_only, profile
from harness.plan.overrides import Overrides


def test_expansion_counts() -> None:
    paper = profile("paper")
    assert len(expand(suites.get("table1"), paper)) == 12 * 5
    assert len(expand(suites.get("table13"), paper)) == 16 * 5
    assert len(expand(suites.get("table7"), profile("smoke"))) == 2
    # §III-D: nine rows differing only in the test batch share one training job per seed
    jobs = expand(suites.get("infer-batch"), paper)
    assert len(jobs) == 5
    assert [e["batch_size"] for e in jobs[0].config["evals"]] == [1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_hashes_are_stable_and_distinct() -> None:
    a = expand(suites.get("table8"), profile("paper"))
    b = expand(suites.get("table8"), profile("paper"))
    assert [j.config_hash for j in a] == [j.config_hash for j in b]
    assert len({j.config_hash for j in a}) == len(a)
    assert len({j.group_hash for j in a}) == 5  # five R values
    seeds = [j for j in a if j.row.setting == "R=2"]
    assert len({j.group_hash for j in seeds}) == 1 and len({j.config_hash for j in seeds}) == 5


def test_repeated_tables_share_jobs() -> None:
    """Table I's ResNet-50 + BA²M is Table VIII's R=32 and Table XIII's all-blocks job."""
    paper = profile("paper")
    t1 = {j.label: j.group_hash for j in expand(suites.get("table1"), paper)}
    t8 = {j.row.setting: j.group_hash for j in expand(suites.get("table8"), paper)}
    t13 = {j.row.setting: j.group_hash for j in expand(suites.get("table13"), paper)}
    assert t1["ResNet-50 / ba2m"] == t8["R=32"] == t13["blocks=1+2+3+4"]


def test_recipe_and_overrides() -> None:
    job = expand(suites.get("fig5"), profile("paper"), Overrides(only="setting=N=64"))[0]
    assert job.config["train"]["batch_size"] == 64
    assert job.config["train"]["lr"] == pytest.approx(0.05)
    assert job.config["model"]["options"]["reduction"] == 32  # every option in force is stored
    short = expand(suites.get("table1"), profile("short"))[0].config["train"]
    assert short["epochs"] == 41 and short["milestones"] == [20, 31]
    smoke = expand(suites.get("table5"), profile("smoke"))[0]
    assert smoke.config["data"]["provider"] == "synthetic" and not smoke.config["comparable"]


def test_comparable_only_when_trained_as_the_papers_row() -> None:
    """A paper-profile job stays comparable (and keeps its identity) when an override restates
    the recipe; a batch size, epoch count or data-parallel width other than the paper's makes
    another experiment."""
    paper, cifar, imagenet = profile("paper"), suites.get("table7"), suites.get("table2")
    plain = expand(cifar, paper, Overrides(seeds=1))[0]
    assert plain.config["comparable"]
    restated = expand(cifar, paper, Overrides(seeds=1, batch_size=plain.config["train"][
        "batch_size"], epochs=plain.config["train"]["epochs"], gpus_per_job=1,
        dataset="cifar100"))[0]
    assert restated.config_hash == plain.config_hash
    for over in (Overrides(seeds=1, batch_size=64), Overrides(seeds=1, epochs=10),
                 Overrides(seeds=1, gpus_per_job=2), Overrides(seeds=1, dataset="cifar10")):
        config = expand(cifar, paper, over)[0].config
        assert not config["comparable"], over
        assert "--batch-size" in not_comparable_reason(config)  # what runs and reports say
    sets = expand(cifar, paper, Overrides(seeds=1, sets=("train.lr=0.05",)))[0].config
    assert not_comparable_reason(sets) == "--set train.lr=0.05"
    smoke = expand(cifar, profile("smoke"))[0].config
    assert not_comparable_reason(smoke) == "smoke profile"
    eight = expand(imagenet, paper, Overrides(seeds=1, only="method=ba2m"))[0]
    one = expand(imagenet, paper, Overrides(seeds=1, only="method=ba2m", gpus_per_job=1))[0]
    assert eight.config["comparable"] and not one.config["comparable"]


def test_unavailable_rows_say_what_is_missing() -> None:
    table7 = suites.get("table7")
    lacking = replace(table7, rows=(replace(table7.rows[0], available="a part the zoo lacks"),))
    (job,) = expand(lacking, profile("smoke"))
    assert job.unavailable == "not yet available: a part the zoo lacks (table7: " \
        f"{table7.rows[0].label})"
    jobs = expand(suites.get("table5"), profile("smoke"))
    assert all(j.unavailable is None for j in jobs)  # every Table V method is in the zoo


@pytest.mark.parametrize("bad", ["method", "colour=red", "method=ba2m,,"])
def test_malformed_only_filter(bad: str) -> None:
    with pytest.raises(UserError, match="malformed --only"):
        parse_only(bad)


def test_filters_and_bad_numbers() -> None:
    assert len(expand(suites.get("table9"), profile("paper"),
                      Overrides(only="setting=branches=ca|branches=lsa"))) == 10
    with pytest.raises(UserError, match="matches no row"):
        expand(suites.get("table7"), profile("paper"), Overrides(only="method=se"))
    with pytest.raises(UserError, match="positive"):
        expand(suites.get("table7"), profile("paper"), Overrides(seeds=0))
    with pytest.raises(UserError, match="unknown profile"):
        profile("fast")
