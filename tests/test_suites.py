"""Suite declarations: shape, metric names and spot checks of the paper's transcribed values."""

from __future__ import annotations

import csv
import io

import pytest

import suites
from suites._rows import DETECTORS
from suites.base import DetectionRecipe, Recipe
from suites.base import Row, Suite
from suites.paper import CSV_FIELDS, paper_frame, paper_values, to_csv

ALL = suites.all_suites()


def _row(suite: Suite, backbone: str, method: str, setting: str = "") -> Row:
    hits = [r for r in suite.rows
            if (r.backbone, r.method, r.setting) == (backbone, method, setting)]
    assert len(hits) == 1, f"{suite.name}: {backbone} / {method} / {setting}: {len(hits)} rows"
    return hits[0]


@pytest.mark.parametrize("name", suites.NAMES)
def test_suite_is_well_formed(name: str) -> None:
    suite = suites.get(name)
    assert suite.name == name
    assert suite.rows
    assert set(suite.metrics) <= set(suites.METRICS)
    assert suite.task in ("classification", "detection")
    assert suite.form in ("cifar", "imagenet")
    labels = [(r.backbone, r.method, r.setting) for r in suite.rows]
    assert len(labels) == len(set(labels)), "duplicate row labels"
    for r in suite.rows:
        assert set(r.paper) <= set(suite.metrics), r.label
        assert all(isinstance(v, float) for v in r.paper.values()), r.label
    assert all(r.available is None for r in suite.rows)
    if suite.task == "detection":
        assert isinstance(suite.recipe, DetectionRecipe) and suite.seeds == 1
        assert all(r.setting and r.model["detector"] == DETECTORS[r.setting] for r in suite.rows)
    else:
        assert isinstance(suite.recipe, Recipe) and suite.seeds == 5


def test_paper_numbering_is_unique() -> None:
    tables = [s.table for s in ALL]
    assert len(tables) == len(set(tables))
    assert ALL == sorted(ALL, key=suites.paper_order)  # tables, then figures, then the text
    numerals = [suites.roman_value(t) for t in tables if suites.roman_value(t) is not None]
    assert numerals == list(range(1, len(numerals) + 1))  # Table I, II, ... with no gap


def test_table5_spot_checks() -> None:
    t5 = suites.get("table5")
    assert len(t5.rows) == 24
    assert _row(t5, "ResNet-101", "ge").paper["params_m"] == 33.70
    assert _row(t5, "ResNet-101", "gc").paper["top1_err"] == 25.36
    assert _row(t5, "ResNet-50", "sasa").paper == {"params_m": 18.00, "flops_g": 7.20,
                                                   "top1_err": 22.40}
    assert _row(t5, "ResNet-101", "sasa").paper == {}
    assert _row(t5, "ResNet-50", "ba2m").paper == {"params_m": 26.21, "flops_g": 4.32,
                                                   "top1_err": 21.63, "top5_err": 5.80}


def test_table8_reduction() -> None:
    t8 = suites.get("table8")
    r2 = _row(t8, "ResNet-50", "ba2m", "R=2")
    assert r2.paper == {"params_m": 70.80, "flops_g": 2.86, "err": 17.71, "std": 0.40}
    assert r2.model == {"reduction": 2}
    assert [r.setting for r in t8.rows] == ["R=2", "R=4", "R=8", "R=16", "R=32"]


def test_table9_branches_are_inferred() -> None:
    t9 = suites.get("table9")
    assert all(r.inferred for r in t9.rows)
    assert _row(t9, "ResNet-50", "ba2m", "branches=lsa").paper == {"err": 17.86, "std": 0.30}
    assert _row(t9, "ResNet-50", "ba2m", "branches=lsa+gsa").paper["err"] == 17.78
    assert t9.rows[-1].model == {"branches": ("ca", "lsa", "gsa")}


def test_table13_block_combinations() -> None:
    t13 = suites.get("table13")
    assert len(t13.rows) == 16
    errs = [r.paper["err"] for r in t13.rows]
    assert errs == [21.49, 17.96, 17.87, 17.94, 17.88, 18.05, 18.33, 17.99, 17.91, 17.78,
                    17.95, 17.70, 18.02, 17.90, 17.93, 17.60]
    assert _row(t13, "ResNet-50", "ba2m", "blocks=2+3").paper == {"err": 17.91, "std": 0.17}
    assert _row(t13, "ResNet-50", "ba2m", "blocks=2+4").paper == {"err": 17.78, "std": 0.21}
    assert _row(t13, "ResNet-50", "ba2m", "blocks=1+3").model == {"stages": (1, 3)}
    base = _row(t13, "ResNet-50", "baseline", "blocks=none")
    assert not base.inferred and base.paper == {"err": 21.49, "std": 0.13}
    assert all(r.inferred for r in t13.rows[1:])


def test_other_spot_checks() -> None:
    t10 = suites.get("table10")
    assert _row(t10, "ShuffleNetv2", "baseline").paper == {"params_m": 1.3, "flops_g": 0.05,
                                                           "err": 26.8}
    assert _row(t10, "EfficientNetB0", "ba2m").arch == "efficientnet_b0"
    t11 = suites.get("table11")
    assert len(t11.rows) == 28
    assert _row(t11, "WRN-28 (w=8)", "ge").paper == {"err": 19.74}
    assert _row(t11, "WRN-28 (w=10)", "aa").paper == {"params_m": 36.20, "flops_g": 5.45,
                                                      "err": 18.40}
    t12 = suites.get("table12")
    assert len(t12.rows) == 31
    assert "params_m" not in _row(t12, "ResNet-34", "bam").paper
    assert _row(t12, "ResNet-34", "bam").paper == {"top1_err": 25.71, "top5_err": 8.21}
    sk50 = _row(t12, "ResNeXt-50", "sk")
    assert "SKNet" in sk50.note and "top5_err" not in sk50.paper
    assert _row(t12, "ResNeXt-101", "sk").paper["flops_g"] == 8.46
    t16 = suites.get("table16")
    assert _row(t16, "ResNet-101", "ba2m", "Mask R-CNN").paper["apl_mask"] == 55.90
    assert _row(suites.get("table14"), "ResNet-50", "ba2m", "Faster R-CNN").paper[
        "ap50_bb"] == 60.00
    t7 = suites.get("table7")
    assert _row(t7, "ResNet-50", "ba2m", "inside").model == {"position": "inside"}
    t4 = suites.get("table4")
    assert [r.method for r in t4.rows] == ["baseline", "ohem", "ba2m"]
    t6 = suites.get("table6")
    assert _row(t6, "ResNet-50", "bam+ba2m").paper["err"] == 17.00


def test_fig5_and_infer_batch() -> None:
    fig5 = suites.get("fig5")
    assert [r.setting for r in fig5.rows] == [f"N={n}" for n in (4, 8, 16, 32, 64, 128, 256)]
    assert all(r.paper == {} for r in fig5.rows)
    n128 = _row(fig5, "ResNet-50", "ba2m", "N=128")
    assert n128.train == {"batch_size": 128, "lr": 0.1} and n128.eval == {"batch_size": 128}
    assert _row(fig5, "ResNet-50", "ba2m", "N=256").train["lr"] == pytest.approx(0.2)
    ib = suites.get("infer-batch")
    assert len(ib.rows) == 9
    assert all(r.paper == {"top1_err": 21.63} for r in ib.rows)
    # one training job per seed: rows differ only in eval
    assert len({(r.arch, r.method, repr(r.model), repr(r.train)) for r in ib.rows}) == 1
    assert len({repr(r.eval) for r in ib.rows}) == 9


def test_paper_values_counts() -> None:
    values = paper_values()
    assert len(values) == 584  # the BA²M paper's 574, He et al. 2016's 10 (the he2016 anchor)
    assert len(values) > 500
    by_hand = {"I": 36, "II": 36, "III": 4, "IV": 6, "V": 91, "VI": 24, "VII": 4, "VIII": 20,
               "IX": 14, "X": 24, "XI": 82, "XII": 120, "XIII": 32, "XIV": 24, "XV": 24,
               "XVI": 24, "Fig. 5": 0, "III-D": 9, "He et al. 2016": 10}
    for table, n in by_hand.items():
        assert len(paper_values(table)) == n, table
    assert sum(by_hand.values()) == len(values)


def test_paper_values_shape_and_filter() -> None:
    values = paper_values()
    assert all(list(v) == ["table", "dataset", "backbone", "method", "setting", "metric",
                           "value", "inferred"] for v in values)
    assert paper_values("V") == paper_values("table5")
    assert paper_values("III-D") == paper_values("infer-batch")
    assert [v["table"] for v in values[:3]] == ["I", "I", "I"]
    assert [v["metric"] for v in paper_values("VII")] == ["err", "std", "err", "std"]
    assert all(v["inferred"] for v in paper_values("IX"))
    with pytest.raises(KeyError):
        paper_values("XVII")
    frame = paper_frame("XIII")
    assert len(frame) == 32 and int(frame["inferred"].sum()) == 30


def test_csv_round_trip() -> None:
    values = paper_values()
    text = to_csv(values)
    assert text.splitlines()[0] == "table,dataset,backbone,method,setting,metric,value"
    assert CSV_FIELDS == ("table", "dataset", "backbone", "method", "setting", "metric", "value")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == len(values)
    for got, want in zip(parsed, values):
        assert float(got["value"]) == want["value"]
        assert all(got[k] == want[k] for k in CSV_FIELDS if k != "value")
